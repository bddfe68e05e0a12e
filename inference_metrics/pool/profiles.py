"""Engine profiles: which series of a model server's page carry the pool monitor's numbers.

A selector is upstream's syntax (a PromQL instant selector without operators other than ``=``):
``name`` or ``name{label="value",other=value}`` (quotes optional). The built-in profiles are
upstream's (llm-d-router ``core-metrics-extractor`` ``factories.go``; GIE model server protocol,
``docs/proposals/003-model-server-protocol``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .parse import Page, Sample

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINE_LABELS",
    "PROFILES",
    "EngineNumbers",
    "EngineProfile",
    "Reading",
    "Selector",
    "extract",
    "profile_for",
]

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SELECTOR = re.compile(rf"\s*(?P<name>{_NAME})\s*(?:\{{(?P<labels>[^{{}}]*)\}})?\s*")
_MATCHER = re.compile(
    r"\s*(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"
    r"(?:\"(?P<quoted>(?:[^\"\\]|\\.)*)\"|(?P<bare>[^,\"\s]*))\s*(?:,|$)"
)

#: Pod labels that name a pod's engine, newest first (llm-d-router, then GIE's legacy one).
ENGINE_LABELS = ("llm-d.ai/engine-type", "inference.networking.k8s.io/engine-type")
DEFAULT_ENGINE = "vllm"

#: Family types whose samples are a plain number (a histogram or summary has none to read).
_NUMBER_TYPES = frozenset({"gauge", "counter", "untyped", "unknown"})


@dataclass(frozen=True, slots=True)
class Selector:
    """A series selector: a sample name and label values it must carry."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str, *, argument: str = "selector") -> Selector:
        """``name`` or ``name{label="value",...}``; ValueError names ``argument`` and the text."""
        if not isinstance(text, str):
            raise TypeError(f"{argument} must be a string, got {type(text).__name__} {text!r}")
        match = _SELECTOR.fullmatch(text)
        if match is None:
            raise ValueError(
                f'{argument} must be a metric selector like name{{label="value"}}, got {text!r}'
            )
        labels: list[tuple[str, str]] = []
        raw = (match.group("labels") or "").strip()
        position = 0
        while position < len(raw):
            matcher = _MATCHER.match(raw, position)
            if matcher is None or matcher.end() == position:
                raise ValueError(
                    f'{argument}: cannot read the label matchers of {text!r} (use label="value")'
                )
            value = matcher.group("quoted")
            if value is None:
                value = matcher.group("bare")
            else:
                value = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)
            labels.append((matcher.group("label"), value))
            position = matcher.end()
        return cls(match.group("name"), tuple(labels))

    def __str__(self) -> str:
        if not self.labels:
            return self.name
        inner = ",".join(f'{k}="{v}"' for k, v in self.labels)
        return f"{self.name}{{{inner}}}"

    def matches(self, sample: Sample) -> bool:
        labels = sample.labels
        return all(labels.get(key) == value for key, value in self.labels)

    def find(self, page: Page) -> list[Sample]:
        """The matching samples, in page order. KeyError: the family is absent; TypeError: it
        is not a number family (a histogram's or summary's own name)."""
        samples = page.samples.get(self.name)
        if samples is None:
            raise KeyError(self.name)
        kind = page.types.get(self.name, "untyped")
        if kind not in _NUMBER_TYPES:
            raise TypeError(f"{self.name} is a {kind}, not a gauge or counter")
        return [s for s in samples if self.matches(s)]


def _selectors(
    value: str | Selector | Sequence[str | Selector] | None, argument: str
) -> tuple[Selector, ...]:
    if value is None:
        return ()
    items: Sequence[str | Selector] = [value] if isinstance(value, str | Selector) else value
    return tuple(
        item if isinstance(item, Selector) else Selector.parse(item, argument=argument)
        for item in items
    )


#: The fields of :class:`EngineProfile` that hold selectors.
_SELECTOR_FIELDS = (
    "queue",
    "running",
    "kv_cache",
    "lora",
    "cache_info",
    "block_size",
    "num_blocks",
)


@dataclass(frozen=True)
class EngineProfile:
    """Where one engine keeps each number. Each field is a tuple of selectors tried in order
    (the first whose family is on the page is used: ``kv_cache`` of ``vllm`` falls back to the
    deprecated ``vllm:gpu_cache_usage_perc``). Empty: the engine does not expose it.

    ``lora``: a gauge whose labels ``running_lora_adapters``, ``waiting_lora_adapters``
    (comma-separated) and ``max_lora`` describe the adapters; of several series the one with the
    largest value (vLLM writes a timestamp) wins. ``cache_info``: a gauge whose labels
    ``block_size_label`` and ``num_blocks_label`` carry the cache geometry; ``block_size`` and
    ``num_blocks``: gauges carrying it as values.
    """

    name: str
    queue: tuple[Selector, ...] = ()
    running: tuple[Selector, ...] = ()
    kv_cache: tuple[Selector, ...] = ()
    lora: tuple[Selector, ...] = ()
    cache_info: tuple[Selector, ...] = ()
    block_size_label: str = "block_size"
    num_blocks_label: str = "num_gpu_blocks"
    block_size: tuple[Selector, ...] = ()
    num_blocks: tuple[Selector, ...] = ()
    families: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        for field_name in _SELECTOR_FIELDS:
            object.__setattr__(self, field_name, _selectors(getattr(self, field_name), field_name))
        names = {s.name for field_name in _SELECTOR_FIELDS for s in getattr(self, field_name)}
        object.__setattr__(self, "families", frozenset(names))

    @classmethod
    def custom(
        cls,
        name: str,
        *,
        queue: str | Sequence[str] | None = None,
        running: str | Sequence[str] | None = None,
        kv_cache: str | Sequence[str] | None = None,
        lora: str | Sequence[str] | None = None,
        cache_info: str | Sequence[str] | None = None,
        base: EngineProfile | None = None,
    ) -> EngineProfile:
        """A profile from selectors in upstream's syntax; unset fields come from ``base``."""
        start = base or cls(name)
        return cls(
            name,
            queue=_selectors(queue, "queue") or start.queue,
            running=_selectors(running, "running") or start.running,
            kv_cache=_selectors(kv_cache, "kv_cache") or start.kv_cache,
            lora=_selectors(lora, "lora") or start.lora,
            cache_info=_selectors(cache_info, "cache_info") or start.cache_info,
            block_size_label=start.block_size_label,
            num_blocks_label=start.num_blocks_label,
            block_size=start.block_size,
            num_blocks=start.num_blocks,
        )


def _profile(
    name: str,
    *,
    block_size_label: str = "block_size",
    num_blocks_label: str = "num_gpu_blocks",
    **selectors: str | Sequence[str],
) -> EngineProfile:
    return EngineProfile(
        name,
        block_size_label=block_size_label,
        num_blocks_label=num_blocks_label,
        **{k: _selectors(v, k) for k, v in selectors.items()},
    )


#: The built-in engines, by the name used in ``--engine`` and in the pod label.
PROFILES: Mapping[str, EngineProfile] = {
    p.name: p
    for p in (
        _profile(
            "vllm",
            queue="vllm:num_requests_waiting",
            running="vllm:num_requests_running",
            kv_cache=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
            lora="vllm:lora_requests_info",
            cache_info="vllm:cache_config_info",
        ),
        _profile(
            "sglang",
            queue="sglang:num_queue_reqs",
            running="sglang:num_running_reqs",
            kv_cache="sglang:token_usage",
            cache_info="sglang:cache_config_info",
            block_size_label="page_size",
            num_blocks_label="num_pages",
        ),
        _profile(
            "trtllm-serve",
            queue="trtllm_num_requests_waiting",
            running="trtllm_num_requests_running",
            kv_cache="trtllm_kv_cache_utilization",
            block_size="trtllm_kv_cache_tokens_per_block",
            num_blocks="trtllm_kv_cache_max_blocks",
        ),
        _profile(
            "triton-trtllm",
            queue='nv_trt_llm_request_metrics{request_type="waiting"}',
            running='nv_trt_llm_request_metrics{request_type="scheduled"}',
            kv_cache='nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"}',
            block_size='nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="tokens_per"}',
            num_blocks='nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max"}',
        ),
        _profile(
            "triton",
            queue="nv_inference_pending_request_count",
            running="nv_inference_exec_count",
        ),
    )
}


def profile_for(engine: str, profiles: Mapping[str, EngineProfile] | None = None) -> EngineProfile:
    """The profile named ``engine``; ValueError lists the known ones."""
    table = PROFILES if profiles is None else profiles
    try:
        return table[engine]
    except (KeyError, TypeError):
        raise ValueError(
            f"engine must be one of {', '.join(sorted(table))}, got {engine!r}"
        ) from None


@dataclass(frozen=True, slots=True)
class EngineNumbers:
    """What an engine says about itself: None (or empty) where it said nothing usable."""

    queue: float | None = None
    running: float | None = None
    kv_cache: float | None = None
    running_adapters: tuple[str, ...] = ()
    waiting_adapters: tuple[str, ...] = ()
    max_adapters: int | None = None
    block_size: int | None = None
    num_blocks: int | None = None


@dataclass(frozen=True, slots=True)
class Reading(EngineNumbers):
    """What one page said, per :class:`EngineProfile`.

    ``problems`` names each configured number that could not be read (absent family, wrong
    type, no matching series, not a finite number >= 0): upstream's extract errors.
    """

    problems: tuple[str, ...] = ()

    @property
    def updated(self) -> bool:
        """At least one number was read (upstream: any successful field refreshes the time)."""
        return (
            self.queue is not None
            or self.running is not None
            or self.kv_cache is not None
            or self.max_adapters is not None
        )


def _first(selectors: tuple[Selector, ...], page: Page) -> tuple[Sample | None, str | None]:
    """The first sample of the first selector whose family is present, or why there is none."""
    problem = None
    for selector in selectors:
        try:
            samples = selector.find(page)
        except KeyError:
            problem = problem or f"{selector.name} is missing"
            continue
        except TypeError as exc:
            return None, str(exc)
        if samples:
            return samples[0], None
        return None, f"no series matches {selector}"
    return None, problem


def _number(sample: Sample | None) -> float | None:
    if sample is None:
        return None
    value = sample.value
    return value if value >= 0 and value != float("inf") else None  # False for NaN


def _integer(text: str | None) -> int | None:
    if text is None or not text.strip().isdigit():
        return None
    return int(text)


def _adapters(text: str | None) -> tuple[str, ...]:
    return tuple(a.strip() for a in (text or "").split(",") if a.strip())


def extract(profile: EngineProfile, page: Page) -> Reading:
    """Read ``profile``'s numbers from ``page``; never raises."""
    values: dict[str, float | None] = {}
    problems: list[str] = []
    for field_name in ("queue", "running", "kv_cache"):
        selectors: tuple[Selector, ...] = getattr(profile, field_name)
        if not selectors:
            values[field_name] = None
            continue
        sample, problem = _first(selectors, page)
        value = _number(sample)
        if sample is not None and value is None:
            problem = f"{selectors[0].name} is not a finite number >= 0: {sample.value!r}"
        values[field_name] = value
        if problem:
            problems.append(f"{field_name}: {problem}")

    running_adapters: tuple[str, ...] = ()
    waiting_adapters: tuple[str, ...] = ()
    max_adapters = None
    if profile.lora:
        candidates: list[Sample] = []
        for selector in profile.lora:
            try:
                candidates = selector.find(page)
            except (KeyError, TypeError):
                continue  # optional: an engine without adapters has no such family
            if candidates:
                break
        if candidates:
            # vLLM's value is the time the info was written: the newest wins.
            newest = max(candidates, key=lambda s: s.value if s.value == s.value else -1.0)
            running_adapters = _adapters(newest.labels.get("running_lora_adapters"))
            waiting_adapters = _adapters(newest.labels.get("waiting_lora_adapters"))
            max_adapters = _integer(newest.labels.get("max_lora"))

    block_size = num_blocks = None
    if profile.cache_info:
        sample, _ = _first(profile.cache_info, page)
        if sample is not None:
            block_size = _integer(sample.labels.get(profile.block_size_label))
            num_blocks = _integer(sample.labels.get(profile.num_blocks_label))
    if profile.block_size:
        value = _number(_first(profile.block_size, page)[0])
        block_size = int(value) if value is not None else block_size
    if profile.num_blocks:
        value = _number(_first(profile.num_blocks, page)[0])
        num_blocks = int(value) if value is not None else num_blocks

    return Reading(
        queue=values["queue"],
        running=values["running"],
        kv_cache=values["kv_cache"],
        running_adapters=running_adapters,
        waiting_adapters=waiting_adapters,
        max_adapters=max_adapters,
        block_size=block_size,
        num_blocks=num_blocks,
        problems=tuple(problems),
    )
