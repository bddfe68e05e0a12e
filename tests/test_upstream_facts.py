"""The facts of tests/upstream_functions.py and tests/upstream_scenarios.py agree with upstream's
golden files (tests/data/upstream/llm-d-router-v0.10.0/) and with each other.

Nothing here imports ``inference_metrics``. The strongest check runs every scenario through the
facts themselves (:class:`FactModel`: each call's checks, label expressions, values and
operations, exactly as the facts state them) and compares the result with the golden files and
upstream's single-value assertions: a wrong bucket, label, HELP, operation or value expression in
the facts fails here, before any Recorder is involved.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from .expo import Family, parse_text
from .schema_facts import Fact
from .upstream_functions import (
    AT_TAG,
    FUNCTION_BY_METHOD,
    FUNCTIONS,
    METRICS,
    SCHEDULER_BUCKETS,
    Function,
    Write,
)
from .upstream_replay import (
    GOLDEN_PATH,
    assert_check,
    assert_matches_golden,
    golden_text,
    without_deprecation_note,
)
from .upstream_scenarios import NOT_CALLED, SCENARIOS, UNREAD, Call, Scenario, ms

README = Path(__file__).parent / "data" / "upstream" / "README.md"
GOLDEN_FILES = sorted(p.name for p in GOLDEN_PATH.iterdir())
READ_FILES = [f for f in GOLDEN_FILES if f not in UNREAD]


def _scenario_id(scenario: Scenario) -> str:
    return scenario.test


# --- the copies ---------------------------------------------------------------------------------


GIE_PATH = GOLDEN_PATH.parent / "gie-v1.5.0"
GIE_FILES = sorted(p.name for p in GIE_PATH.iterdir())


def _cited_blobs(directory: str = "llm-d-router-v0.10.0") -> dict[str, str]:
    """File name -> blob id, from the README's list of one directory's golden files."""
    section = README.read_text(encoding="utf-8").split(f"(directory {directory}/)", 1)[1]
    section = section.split("\nGolden expositions of ", 1)[0]
    return dict(re.findall(r"^  (\w+)\n    ([0-9a-f]{40}) ", section, re.MULTILINE))


def _blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def test_the_readme_cites_every_golden_file_and_nothing_else() -> None:
    assert sorted(_cited_blobs()) == GOLDEN_FILES
    assert len(GOLDEN_FILES) == 60
    assert sorted(_cited_blobs("gie-v1.5.0")) == GIE_FILES
    assert len(GIE_FILES) == 19


@pytest.mark.parametrize("file", GOLDEN_FILES)
def test_each_golden_file_is_the_blob_the_readme_cites(file: str) -> None:
    assert _blob((GOLDEN_PATH / file).read_bytes()) == _cited_blobs()[file]


@pytest.mark.parametrize("file", GIE_FILES)
def test_each_gie_golden_file_is_the_blob_the_readme_cites(file: str) -> None:
    assert _blob((GIE_PATH / file).read_bytes()) == _cited_blobs("gie-v1.5.0")[file]


def _without_note(
    family: Family,
) -> tuple[str, str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    return (family.type, without_deprecation_note(family.documentation), family.samples)


@pytest.mark.parametrize(
    "file", [f for f in GIE_FILES if f != "plugin_processing_latencies_metric"]
)
def test_gie_s_golden_file_is_llm_d_router_s_without_the_deprecation_note(file: str) -> None:
    # What the gie-v1.5 replay (tests/test_recorder_upstream.py) compares with.
    gie = parse_text((GIE_PATH / file).read_text(encoding="utf-8"))
    ours = parse_text(golden_text(file))
    assert sorted(gie) == sorted(ours)
    for name, family in gie.items():
        assert _without_note(family) == _without_note(ours[name]), name


def test_gie_s_plugin_golden_file_is_llm_d_router_s_for_the_four_plugins_gie_records() -> None:
    file = "plugin_processing_latencies_metric"
    name = "inference_extension_plugin_duration_seconds"
    gie = parse_text((GIE_PATH / file).read_text(encoding="utf-8"))[name]
    ours = parse_text(golden_text(file))[name]
    plugins = {dict(labels)["plugin_name"] for _, labels in gie.samples}
    assert plugins == {"PluginB", "PluginC", "PluginD", "PluginE"}
    kept = {k: v for k, v in ours.samples.items() if dict(k[1])["plugin_name"] in plugins}
    assert _without_note(gie) == (ours.type, without_deprecation_note(ours.documentation), kept)


# --- golden files against the metric facts ------------------------------------------------------


def _le_bounds(family: Family) -> tuple[float, ...]:
    bounds = {
        float(dict(labels)["le"]) for name, labels in family.samples if name.endswith("_bucket")
    }
    return tuple(sorted(b for b in bounds if b != float("inf")))


@pytest.mark.parametrize("file", READ_FILES)
def test_every_family_in_a_golden_file_is_a_fact_with_its_help_type_labels_and_buckets(
    file: str,
) -> None:
    families = parse_text(golden_text(file))
    assert families
    for name, family in families.items():
        fact = METRICS[name]
        assert family.type == fact.type
        assert family.documentation == fact.help
        for sample, labels in family.samples:
            assert {k for k, _ in labels} - {"le"} == set(fact.labels), (sample, labels)
        if fact.type == "histogram":
            assert fact.buckets is not None
            assert _le_bounds(family) == tuple(float(b) for b in fact.buckets)


def test_the_golden_files_the_go_tests_read_are_exactly_those_the_scenarios_compare() -> None:
    compared = {g.file for s in SCENARIOS for step in s.steps for g in step.goldens}
    assert compared == set(READ_FILES)
    assert set(GOLDEN_FILES) >= UNREAD


def test_each_golden_file_holds_the_one_family_its_scenario_compares() -> None:
    for scenario in SCENARIOS:
        for step in scenario.steps:
            for golden in step.goldens:
                assert set(parse_text(golden_text(golden.file))) == {golden.metric}


def test_the_metrics_that_differ_at_the_tag_are_metrics_of_the_functions() -> None:
    assert set(AT_TAG) <= set(METRICS)
    for name, fact in AT_TAG.items():
        assert fact != METRICS[name]


# --- the functions, internally ------------------------------------------------------------------

_TOKENS = {"KVCache": "KvCache", "E2E": "E2e", "TTFT": "Ttft", "TPOT": "Tpot", "ID": "Id"}


def _snake(go_name: str) -> str:
    """Issue 21's rule: the Go name in snake_case, its acronyms as single words."""
    for token, word in _TOKENS.items():
        go_name = re.sub(token + r"(?=[A-Z]|$)", word, go_name)
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", go_name).lower()


def test_the_rule_s_conversion_of_go_names() -> None:
    assert _snake("RecordInferencePoolAvgKVCache") == "record_inference_pool_avg_kv_cache"
    assert _snake("RecordSchedulerE2ELatency") == "record_scheduler_e2e_latency"
    assert _snake("RecordRequestTTFT") == "record_request_ttft"
    assert _snake("RecordDataLayerPollError") == "record_data_layer_poll_error"
    assert _snake("fairnessID") == "fairness_id"


def _go_params(signature: str) -> list[tuple[str, str]]:
    """(name, type) per parameter of a one-line Go signature, ``ctx`` included."""
    inside = signature[signature.index("(") + 1 : signature.rindex(")")]
    params: list[tuple[str, str]] = []
    pending: list[str] = []
    for part in (p.strip() for p in inside.split(",")):
        name, _, type_ = part.partition(" ")
        pending.append(name)
        if type_:
            params.extend((n, type_) for n in pending)
            pending = []
    assert not pending, signature
    return params


_PY_TYPES = {
    "string": "str", "int": "int", "uint64": "int", "float64": "float", "bool": "bool",
    "time.Duration": "float", "time.Time": "float", "error": "BaseException | None",
    "*fwksched.SchedulingResult": "tuple[str, str, str] | None",
}  # fmt: skip


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.go)
def test_method_and_parameters_follow_the_rule(function: Function) -> None:
    assert function.method == _snake(function.go)
    go = [p for p in _go_params(function.signature) if p != ("ctx", "context.Context")]
    assert [(p.go, p.go_type) for p in function.params] == go
    for param in function.params:
        assert param.name == _snake(param.go)
        expected = _PY_TYPES[param.go_type]
        if param.name == "first_token":  # the zero time.Time is None
            expected = "float | None"
        assert param.type == expected, param
    assert function.signature.endswith(" bool") == (function.returns is not None)
    assert all(check.returns == (False if function.returns else None) for check in function.checks)


def test_of_52_functions_17_have_a_recorder_call_today_5_an_event_call_and_30_none() -> None:
    assert len(FUNCTIONS) == len(FUNCTION_BY_METHOD) == 52
    assert sum(f.today is not None for f in FUNCTIONS) == 17
    assert sum(f.today_otherwise is not None for f in FUNCTIONS) == 5
    assert sum(f.today is None and f.today_otherwise is None for f in FUNCTIONS) == 30
    assert sum(not f.at_tag for f in FUNCTIONS) == 6


def _names(expression: str) -> set[str]:
    return set(compile(expression, "<fact>", "eval").co_names)


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.go)
def test_checks_values_and_labels_are_expressions_of_the_parameters(function: Function) -> None:
    params = {p.name for p in function.params}
    for check in function.checks:
        assert _names(check.condition) <= params, check
    assert set(function.bounds) <= params
    assert set(function.bounds.values()) <= {"boundModels", "boundModel", "boundFairnessID"}
    for write in function.writes:
        assert len(write.labels) == len(write.fact.labels), write.fact.name
        for expression in (*write.labels, write.value):
            if expression is not None:
                assert _names(expression) <= params | {"str"}, (write.fact.name, expression)
        if write.op in ("observe", "set", "add", "sub"):
            assert write.value is not None
        else:
            assert write.value is None
        assert (None in write.labels) == (write.op == "delete_matching")


_DEPRECATED = re.compile(r"^\[ALPHA\] \[Deprecated: Use (\w+)\] ")


def test_each_deprecated_name_is_written_as_the_twin_of_the_name_its_help_points_to() -> None:
    for function in FUNCTIONS:
        mains = {w.fact.name: w for w in function.writes if w.twin_of is None}
        for write in function.writes:
            note = _DEPRECATED.match(write.fact.help)
            if note is not None:
                assert write.twin_of == note.group(1), write.fact.name
            if write.twin_of is not None:
                main = mains[write.twin_of]
                assert (write.op, write.value) == (main.op, main.value)
                assert write.fact.type == main.fact.type


def test_gie_names_are_names_llm_d_router_still_writes_or_dropped() -> None:
    dropped = {
        "inference_objective_request_ttft_seconds",
        "inference_objective_request_tpot_seconds",
        "inference_objective_inference_request_metric",
    }
    for function in FUNCTIONS:
        written = {w.fact.name: w.fact for w in function.writes}
        for fact in function.gie:
            assert "Deprecated" not in fact.help
            if fact.name in dropped:
                continue
            assert fact.name in written, (function.go, fact.name)
            if fact.name != "inference_extension_flow_control_pool_saturation":
                assert fact.labels == written[fact.name].labels
                assert fact.buckets == written[fact.name].buckets


# --- the scenarios, through the facts -----------------------------------------------------------


def test_every_function_is_called_by_a_scenario_or_listed_as_never_called() -> None:
    called = {c.method for s in SCENARIOS for step in s.steps for c in step.calls}
    assert called.isdisjoint(NOT_CALLED)
    assert called | NOT_CALLED == set(FUNCTION_BY_METHOD)


_ARGUMENT_TYPES: Mapping[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (float,), "bool": (bool,),
    "float | None": (float, type(None)), "BaseException | None": (BaseException, type(None)),
    "tuple[str, str, str] | None": (tuple, type(None)),
}  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS, ids=_scenario_id)
def test_each_call_passes_the_function_s_parameters_in_order(scenario: Scenario) -> None:
    for step in scenario.steps:
        for call in step.calls:
            function = FUNCTION_BY_METHOD[call.method]
            assert not call.kwargs
            assert len(call.args) == len(function.params), call
            for param, arg in zip(function.params, call.args, strict=True):
                assert isinstance(arg, _ARGUMENT_TYPES[param.type]), (call, param)
                assert param.type == "bool" or not isinstance(arg, bool), (call, param)
                if isinstance(arg, tuple):
                    assert len(arg) == 3, call
                    assert all(isinstance(v, str) for v in arg), call
            if function.returns is not None:
                assert call.returns is not None, call


class FactModel:
    """The metrics upstream's functions would hold, computed from the facts alone."""

    def __init__(self, metrics: Mapping[str, Fact] = METRICS) -> None:
        self.metrics = metrics
        # metric -> label values -> value (counter, gauge) or [per-bucket counts..., sum, count]
        self.series: dict[str, dict[tuple[str | None, ...], float | list[float]]] = {}

    def call(self, call: Call) -> bool | None:
        function = FUNCTION_BY_METHOD[call.method]
        env = dict(zip((p.name for p in function.params), call.args, strict=True))
        for check in function.checks:
            if self._eval(check.condition, env):
                return check.returns
        for write in function.writes:
            self._apply(write, env)
        return function.returns

    @staticmethod
    def _eval(expression: str, env: dict[str, object]) -> object:
        # Only this module's fact strings, with the parameters and str() in scope.
        return eval(expression, {"__builtins__": {"str": str}}, env)  # noqa: S307

    def _label(self, expression: str, env: dict[str, object]) -> str:
        value = self._eval(expression, env)
        assert isinstance(value, str), (expression, value)
        return value

    def _number(self, expression: str, env: dict[str, object]) -> float:
        value = self._eval(expression, env)
        assert isinstance(value, int | float), (expression, value)
        assert not isinstance(value, bool), (expression, value)
        return float(value)

    def _apply(self, write: Write, env: dict[str, object]) -> None:
        fact = self.metrics[write.fact.name]
        key = tuple(None if e is None else self._label(e, env) for e in write.labels)
        series = self.series.setdefault(fact.name, {})
        if write.op == "delete":
            series.pop(key, None)
            return
        if write.op == "delete_matching":
            for other in [
                k for k in series if all(v is None or v == o for v, o in zip(key, k, strict=True))
            ]:
                del series[other]
            return
        value = 1.0 if write.value is None else self._number(write.value, env)
        if write.op == "observe":
            assert fact.buckets is not None
            bounds = [float(b) for b in fact.buckets]
            state = series.setdefault(key, [0.0] * (len(bounds) + 3))
            assert isinstance(state, list)
            state[bisect_left(bounds, value)] += 1
            state[-2] += value
            state[-1] += 1
            return
        current = series.get(key, 0.0)
        assert isinstance(current, float)
        series[key] = {
            "inc": current + value, "dec": current - value, "add": current + value,
            "sub": current - value, "set": value,
        }[write.op]  # fmt: skip

    def families(self) -> dict[str, Family]:
        """The exposed families, as tests/expo.py parses an exposition."""
        out: dict[str, Family] = {}
        for name, series in self.series.items():
            if not series:
                continue
            fact = self.metrics[name]
            family = out[name] = Family(name, fact.type, fact.help)
            for key, state in series.items():
                labels = {n: v for n, v in zip(fact.labels, key, strict=True) if v is not None}
                assert len(labels) == len(fact.labels), key
                if isinstance(state, float):
                    family.samples[(name, frozenset(labels.items()))] = state
                    continue
                assert fact.buckets is not None
                running = 0.0
                for bound, count in zip((*fact.buckets, float("inf")), state, strict=False):
                    running += count
                    le = frozenset({**labels, "le": repr(float(bound))}.items())
                    family.samples[(name + "_bucket", le)] = running
                family.samples[(name + "_sum", frozenset(labels.items()))] = state[-2]
                family.samples[(name + "_count", frozenset(labels.items()))] = state[-1]
        return out


@pytest.mark.parametrize("scenario", SCENARIOS, ids=_scenario_id)
def test_the_facts_reproduce_upstream_s_golden_files_and_assertions(scenario: Scenario) -> None:
    model = FactModel()
    for step in scenario.steps:
        for call in step.calls:
            assert model.call(call) == call.returns, call
        families = model.families()
        for golden in step.goldens:
            assert_matches_golden(families, golden)
        for check in step.checks:
            assert_check(families, check)


def _replay_into(model: FactModel, scenario: Scenario) -> dict[str, Family]:
    for step in scenario.steps:
        for call in step.calls:
            model.call(call)
    return model.families()


_E2E = next(s for s in SCENARIOS if s.test == "TestSchedulerE2ELatency")
_E2E_GOLDEN = _E2E.steps[0].goldens[1]


def test_a_call_with_another_value_does_not_match_the_golden_file() -> None:
    first, *rest = _E2E.steps[0].calls
    changed = first._replace(args=(ms(1),))  # upstream's first duration is 200 microseconds
    scenario = _E2E._replace(steps=(_E2E.steps[0]._replace(calls=(changed, *rest)),))
    families = _replay_into(FactModel(), scenario)
    with pytest.raises(AssertionError):
        assert_matches_golden(families, _E2E_GOLDEN)


_E2E_FACT = METRICS[_E2E_GOLDEN.metric]


@pytest.mark.parametrize(
    "wrong",
    [
        replace(_E2E_FACT, help="[ALPHA] End-to-end scheduling latency distribution."),
        replace(_E2E_FACT, buckets=(*SCHEDULER_BUCKETS[:-1], 0.2)),
        replace(_E2E_FACT, type="summary"),
    ],
    ids=["help", "buckets", "type"],
)
def test_a_fact_with_another_help_bucket_or_type_does_not_match_the_golden_file(
    wrong: Fact,
) -> None:
    families = _replay_into(FactModel({**METRICS, wrong.name: wrong}), _E2E)
    with pytest.raises(AssertionError):
        assert_matches_golden(families, _E2E_GOLDEN)
