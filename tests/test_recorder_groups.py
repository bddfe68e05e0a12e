"""The Recorder's label groups: each catalogue metric in exactly one field of one group."""

from __future__ import annotations

from collections import Counter

import pytest

from inference_metrics import CATALOG, Kind, MetricSpec, catalog
from inference_metrics.recorder import CATALOG_LAYOUTS, GroupLayout, ModelRow, PoolRow


def test_every_catalogue_spec_belongs_to_exactly_one_group() -> None:
    placed = Counter(spec.name for spec in CATALOG_LAYOUTS.specs())
    assert placed == Counter(CATALOG.names)


def test_every_spec_of_a_group_shares_the_groups_labels() -> None:
    for layout in CATALOG_LAYOUTS.groups():
        assert {spec.labels for spec in layout.fields.values()} == {layout.labels}


def test_every_field_of_every_row_holds_a_spec() -> None:
    for layout in CATALOG_LAYOUTS.groups():
        assert set(layout.fields) == set(layout.row.__slots__)


def test_a_layout_missing_a_field_is_refused() -> None:
    with pytest.raises(ValueError, match="PoolRow has the fields"):
        GroupLayout(PoolRow, {"ready_pods": catalog.POOL_READY_PODS})


def test_a_layout_mixing_label_sets_is_refused() -> None:
    fields = dict(CATALOG_LAYOUTS.models.fields)
    fields["request_total"] = MetricSpec(
        "other_total", Kind.COUNTER, "Other.", labels=("model_name", "priority")
    )
    with pytest.raises(ValueError, match="must share labels"):
        GroupLayout(ModelRow, fields)
