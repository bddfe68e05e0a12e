"""The Recorder's groups: each schema metric in the fields of the group whose call feeds it."""

from __future__ import annotations

from collections import Counter

import pytest

from inference_metrics import CATALOG, Kind, MetricSpec, catalog
from inference_metrics.recorder import (
    CATALOG_LAYOUTS,
    GroupLayout,
    ModelRow,
    PoolRow,
    layouts_for,
)
from inference_metrics.schemas import LABEL_INPUTS, SCHEMAS


def placements(layouts: object) -> Counter[str]:
    return Counter(
        spec.name
        for layout in layouts.groups()  # type: ignore[attr-defined]
        for specs in layout.fields.values()
        for spec in specs
    )


def test_every_catalogue_spec_belongs_to_exactly_one_field() -> None:
    assert placements(CATALOG_LAYOUTS) == Counter(CATALOG.names)


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_every_spec_takes_its_labels_from_its_groups_inputs(name: str) -> None:
    for layout in layouts_for([SCHEMAS[name]]).groups():
        for field, specs in layout.fields.items():
            fixed = layout.constants.get(field, {})
            for spec in specs:
                for label in spec.labels:
                    assert label in fixed or LABEL_INPUTS[label] in layout.inputs, spec.name


def test_llm_d_router_fills_every_field_of_every_row() -> None:
    for layout in layouts_for([SCHEMAS["llm-d-router"]]).groups():
        assert set(layout.fields) == set(layout.row.__slots__)
        assert all(layout.fields.values()), layout.row.__name__


def test_a_twin_shares_its_field_with_its_successor() -> None:
    models = layouts_for([SCHEMAS["llm-d-router"]]).models
    assert [s.name for s in models.fields["request_total"]] == [
        "llm_d_epp_request_total",
        "inference_objective_request_total",
    ]
    # Only TTFT labelled by streaming records non-streamed responses.
    assert [s.name for s in models.fields["request_ttft_unstreamed"]] == [
        "llm_d_epp_request_ttft_seconds"
    ]


def test_a_layout_missing_a_field_is_refused() -> None:
    with pytest.raises(ValueError, match="PoolRow has the fields"):
        GroupLayout(PoolRow, ("pool_name",), {"ready_pods": (catalog.POOL_READY_PODS,)})


def test_a_layout_with_a_label_its_inputs_cannot_fill_is_refused() -> None:
    fields = dict(CATALOG_LAYOUTS.models.fields)
    fields["request_total"] = (
        MetricSpec("other_total", Kind.COUNTER, "Other.", labels=("model_name", "user")),
    )
    with pytest.raises(ValueError, match=r"labels \['user'\]"):
        GroupLayout(ModelRow, CATALOG_LAYOUTS.models.inputs, fields)
