"""Request handlers measured by a decorator: sync, async, generator and async-generator handlers.

``@instrument_handler(recorder)`` wraps a handler so that each call is one request, recorded
through a :class:`~inference_metrics.lifecycle.RequestContext` with the same rules as an ext_proc
stream (docs/streaming.md has the table):

* at the call: the model (and target) from the call's arguments; the request is counted
  (``request_total``, ``request_sizes``, ``running_requests`` +1). No usable model: the request
  is counted as ``BadRequest`` with empty labels and the handler runs unmeasured;
* a function or coroutine ends when it returns: usage and size come from the result;
* a generator or async generator starts its request (and its clock) at the call and ends when it
  is exhausted, or as soon as a ``bytes``/``str`` item carries the stream's end marker
  (``data: [DONE]``, a Responses API ``response.completed``...): every item is a part of the
  response (the first one is the TTFT timestamp; ``bytes``/``str`` items go through the
  incremental SSE usage parser, and bytes after the marker are not counted); closing it early,
  even before its first item (``close()``, ``aclose()``, ``break`` in ``async for``, garbage
  collection) ends the request as cancelled at once, exactly once, unless its marker went by
  (a consumer that stops at ``[DONE]``, as the OpenAI client does, leaves it complete);
* an exception is counted with its error code (``errors``; else the HTTP status of an exception
  with an integer ``status_code`` or ``status``, as Starlette's, FastAPI's and aiohttp's
  ``HTTPException`` carry, through :meth:`ErrorCode.from_http_status`; else ``Internal``) and
  re-raised
  unchanged; ``asyncio.CancelledError`` (and any other non-``Exception``, such as
  ``KeyboardInterrupt``) cancels the request: neither a success nor an error, only
  ``running_requests`` goes back down, as upstream treats a client that went away.

Extraction never changes what the handler does: an extractor that raises is ignored (and counted in
``Recorder.response_parse_failures`` when it extracts usage or size).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any, ParamSpec, TypeVar, cast

from . import payloads
from .errors import ErrorCode
from .lifecycle import RequestContext
from .payloads import Usage
from .recorder import Recorder

__all__ = [
    "ErrorMapping",
    "MeasuredStream",
    "default_size",
    "default_usage",
    "instrument_handler",
    "start_request",
]

P = ParamSpec("P")
R = TypeVar("R")

#: Maps an exception to its error code: a mapping from exception types (the most specific base
#: class of the exception found in it wins) or a callable returning a code or None (default).
ErrorMapping = (
    Mapping[type[BaseException], ErrorCode | str]
    | Callable[[BaseException], ErrorCode | str | None]
)
_ArgGetter = Callable[[tuple[Any, ...], dict[str, Any]], object]


def start_request(
    recorder: Recorder,
    model_name: object,
    target_model_name: str | None = None,
    *,
    request_size: int = 0,
    fairness_id: object = None,
    priority: object = None,
    clock: Callable[[], float] = time.monotonic,
) -> RequestContext:
    """A routed :class:`RequestContext` for a handler that knows its model, as a context manager:

    .. code-block:: python

        with start_request(recorder, body["model"], request_size=len(raw)) as ctx:
            result = generate(body)
            ctx.on_response_part(size=len(result.text), usage=Usage(10, 20))

    An unusable ``model_name`` counts the request as ``BadRequest`` (the context is then finished
    and records nothing more). ``fairness_id`` and ``priority`` label every metric of the request
    (see :meth:`RequestContext.set_flow`; unusable values are recorded as the defaults).
    """
    ctx = RequestContext(recorder, clock=clock)
    ctx.set_flow(fairness_id=fairness_id, priority=priority)
    if ctx.on_request(model_name, request_size=request_size):
        ctx.route(target_model_name)
    return ctx


# --- extraction -------------------------------------------------------------------------------


def _model_of(value: object) -> object:
    """A model name from an argument: a string, or a request body's ``model`` key/attribute."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return value.get("model")
    return getattr(value, "model", None)


def _response_body(result: object) -> bytes | bytearray | None:
    """The ``body`` of a web framework response (Starlette's, FastAPI's, aiohttp's: the last is
    also a Mapping of its own state, so it is looked at before mappings), or None."""
    body = getattr(result, "body", None)
    if isinstance(body, (bytes, bytearray)) and not isinstance(result, dict):
        return body
    return None


def default_usage(result: object) -> Usage | None:
    """Usage from a handler's result or stream item, when it carries any.

    Understands a :class:`Usage`; a mapping (an OpenAI-style response or chunk); JSON ``bytes``
    or ``str``; an object with a ``usage`` attribute (OpenAI client types: an object or mapping
    with ``prompt_tokens``/``completion_tokens`` or ``input_tokens``/``output_tokens``); a web
    framework response with a JSON ``body`` (``bytes``).
    """
    if isinstance(result, Usage):
        return result
    body = _response_body(result)
    if body is not None:
        return default_usage(bytes(body))
    if isinstance(result, Mapping):
        return payloads.usage_from_object(result if isinstance(result, dict) else dict(result))
    if isinstance(result, (bytes, bytearray, str)):
        try:
            return payloads.usage_from_json(result)
        except ValueError:
            return None
    usage = getattr(result, "usage", None)
    if isinstance(usage, Usage):
        return usage
    if isinstance(usage, Mapping):
        return payloads.usage_from_object({"usage": dict(usage)})
    if usage is not None:
        return payloads.usage_from_object({"usage": _usage_attributes(usage)})
    return None


_USAGE_ATTRIBUTES = ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")


def _usage_attributes(usage: object) -> dict[str, object]:
    """An object's usage attributes (OpenAI client types) as the JSON mapping they mirror."""
    mapping: dict[str, object] = {key: getattr(usage, key, None) for key in _USAGE_ATTRIBUTES}
    for details in ("prompt_tokens_details", "input_tokens_details"):
        cached = getattr(getattr(usage, details, None), "cached_tokens", None)
        if cached is not None:
            mapping[details] = {"cached_tokens": cached}
            break
    return mapping


def default_size(result: object) -> int:
    """A result's size in bytes.

    Exact for ``bytes``, ``str`` (UTF-8) and a web framework response's ``body`` (``bytes``:
    Starlette's and FastAPI's ``Response``, aiohttp's ``web.Response``). A mapping or a pydantic
    model is measured as its compact UTF-8 JSON (``ensure_ascii=False``: what FastAPI and
    Starlette send; another encoder, such as aiohttp's ``json_response``, sends other bytes:
    return the response object, or use :class:`~inference_metrics.asgi.MetricsMiddleware`).
    Anything else: 0.
    """
    if isinstance(result, (bytes, bytearray, memoryview)):
        return len(result)
    if isinstance(result, str):
        return len(result.encode("utf-8", "surrogatepass"))
    body = _response_body(result)
    if body is not None:
        return len(body)
    if isinstance(result, Mapping):
        try:
            encoded = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError):
            return 0
        return len(encoded.encode("utf-8", "surrogatepass"))
    dump_json = getattr(result, "model_dump_json", None)  # a pydantic v2 model
    if callable(dump_json):
        encoded = dump_json()
        if isinstance(encoded, str):
            return len(encoded.encode("utf-8", "surrogatepass"))
    return 0


def _http_status(obj: object) -> int | None:
    """The HTTP status a web framework response or exception carries (``status_code``:
    Starlette, FastAPI; ``status``: aiohttp), or None."""
    for attribute in ("status_code", "status"):
        status = getattr(obj, attribute, None)
        if isinstance(status, int) and not isinstance(status, bool):
            return status
    return None


def _status_code(result: object) -> ErrorCode | None:
    """The failure a web framework response carries in its ``status``/``status_code``."""
    status = _http_status(result)
    return None if status is None else ErrorCode.from_http_status(status)


def _argument_getter(func: Callable[..., object], name: str, role: str) -> _ArgGetter:
    """How to read parameter ``name`` from a call's (args, kwargs), decided once."""
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    by_name = {p.name: (i, p) for i, p in enumerate(parameters)}
    if name not in by_name:
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters) or not parameters:
            return lambda args, kwargs: kwargs.get(name)
        raise TypeError(
            f"{role}={name!r}: {getattr(func, '__qualname__', func)!r} has no parameter {name!r}; "
            f"pass the parameter's name or a callable"
        )
    index, parameter = by_name[name]
    default = None if parameter.default is inspect.Parameter.empty else parameter.default
    positional = parameter.kind in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )
    keyword = parameter.kind is not inspect.Parameter.POSITIONAL_ONLY

    def get(args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
        if keyword and name in kwargs:
            return kwargs[name]
        if positional and index < len(args):
            return args[index]
        return default

    return get


def _getter(
    func: Callable[..., object], source: str | Callable[..., object] | None, role: str
) -> _ArgGetter | None:
    if source is None:
        return None
    if isinstance(source, str):
        return _argument_getter(func, source, role)
    if callable(source):
        extract = source
        return lambda args, kwargs: extract(*args, **kwargs)
    raise TypeError(f"{role} must be a parameter name or a callable, got {source!r}")


def _ask(getter: _ArgGetter | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    """What ``getter`` takes from a call's arguments; None when there is none or it raised."""
    if getter is None:
        return None
    try:
        return getter(args, kwargs)
    except Exception:
        return None


def _error_code(errors: ErrorMapping | None, exc: BaseException) -> ErrorCode | str | None:
    if errors is None:
        return None
    if isinstance(errors, Mapping):
        for cls in type(exc).__mro__:
            code = errors.get(cls)
            if code is not None:
                return code
        return None
    try:
        return errors(exc)
    except Exception:
        return None


# --- the decorator ----------------------------------------------------------------------------


class _Measure:
    """What one decorated handler needs per call; shared by every call."""

    __slots__ = (
        "_clock",
        "_errors",
        "_fairness_id",
        "_model",
        "_priority",
        "_recorder",
        "_request_size",
        "_size",
        "_target",
        "_usage",
    )

    def __init__(
        self,
        recorder: Recorder,
        model: _ArgGetter,
        target: _ArgGetter | None,
        request_size: _ArgGetter | None,
        usage: Callable[[Any], Usage | None] | None,
        size: Callable[[Any], int] | None,
        errors: ErrorMapping | None,
        clock: Callable[[], float],
        fairness_id: _ArgGetter | None,
        priority: _ArgGetter | None,
    ) -> None:
        self._recorder = recorder
        self._fairness_id = fairness_id
        self._priority = priority
        self._model = model
        self._target = target
        self._request_size = request_size
        self._usage = usage
        self._size = size
        self._errors = errors
        self._clock = clock

    def begin(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RequestContext:
        ctx = RequestContext(self._recorder, clock=self._clock)
        try:
            model = _model_of(self._model(args, kwargs))
            target = _model_of(self._target(args, kwargs)) if self._target else None
            size = self._request_size(args, kwargs) if self._request_size else 0
        except Exception:
            model, target, size = None, None, 0
        if not isinstance(size, int) or isinstance(size, bool):
            size = 0
        ctx.set_flow(
            fairness_id=_ask(self._fairness_id, args, kwargs),
            priority=_ask(self._priority, args, kwargs),
        )
        if ctx.on_request(model, request_size=size):
            ctx.route(target if isinstance(target, str) else None)
        return ctx

    def part(self, ctx: RequestContext, item: object) -> None:
        """One streamed item, or a whole result."""
        if ctx.finished:
            return
        if self._usage is None and self._size is None:
            if isinstance(item, (bytes, bytearray, memoryview)):
                ctx.on_response_body(item, end_of_stream=False)
                return
            if isinstance(item, str):
                ctx.on_response_body(item.encode("utf-8", "surrogatepass"), end_of_stream=False)
                return
        try:
            usage = (self._usage or default_usage)(item)
            size = (self._size or default_size)(item)
        except Exception:
            ctx.recorder.record_response_parse_failure()
            ctx.on_response_part()
            return
        ctx.on_response_part(size=size if isinstance(size, int) else 0, usage=usage)

    def result(self, ctx: RequestContext, result: object) -> None:
        """A function's or coroutine's return value: its status, usage and size; the end."""
        if ctx.finished:
            return
        code = _status_code(result)
        if code is not None:
            ctx.fail(code)
            return
        self.part(ctx, result)
        ctx.finish()

    def error(self, ctx: RequestContext, exc: BaseException) -> None:
        code = _error_code(self._errors, exc)
        if code is not None:
            ctx.fail(code)
        elif isinstance(exc, Exception):
            # An HTTP exception (Starlette's, FastAPI's, aiohttp's): its status says how the
            # request ended; a 1xx-3xx one (aiohttp raises redirects) is not a failure.
            status = _http_status(exc)
            code = ErrorCode.INTERNAL if status is None else ErrorCode.from_http_status(status)
            if code is None:
                ctx.finish()
            else:
                ctx.fail(code)
        else:  # asyncio.CancelledError, GeneratorExit, KeyboardInterrupt, SystemExit
            ctx.cancel()


class _Guard:
    """Cancels a streamed request when its generator's frame is dropped without finalisation
    (an async generator collected after its event loop is gone); a no-op once it ended."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx

    def __del__(self) -> None:
        self.ctx.cancel()


def instrument_handler(
    recorder: Recorder,
    *,
    model: str | Callable[..., object] = "model",
    target: str | Callable[..., object] | None = None,
    request_size: str | Callable[..., int] | None = None,
    usage: Callable[[Any], Usage | None] | None = None,
    size: Callable[[Any], int] | None = None,
    errors: ErrorMapping | None = None,
    fairness_id: str | Callable[..., object] | None = None,
    priority: str | Callable[..., object] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a request handler so that each call records one request into ``recorder``.

    ``model``, ``target``, ``request_size``: the name of the handler's parameter that holds it,
    or a callable given the call's arguments. A model parameter may hold the name or the request
    body (a mapping or object with a ``model`` key/attribute). ``target`` defaults to the model;
    ``request_size`` to 0 bytes. ``fairness_id`` and ``priority`` (same forms): the request's
    flow labels; unusable values, or none, are recorded as ``"default-flow"`` and ``0``.

    ``usage`` and ``size``: callables given the result (or each streamed item) returning its
    :class:`Usage` (or None) and its size in bytes; defaults :func:`default_usage` and
    :func:`default_size`. Without either, ``bytes``/``str`` items and results are parsed as the
    response body (incremental SSE parsing for streams).

    ``errors``: the error code of an exception (a mapping of exception types or a callable);
    an unmapped exception with an integer ``status_code`` or ``status`` (an HTTP exception)
    counts as that status's code (1xx-3xx: not a failure), any other as ``Internal``. A result
    with an HTTP ``status``/``status_code`` of 400 or more counts as that status's error code
    (:meth:`ErrorCode.from_http_status`).

    The decorated handler keeps its signature (``ParamSpec``); a generator handler becomes a
    function that starts the request and returns a generator forwarding iteration and closing
    (values passed to ``send()`` are not forwarded to the handler).
    """
    if not isinstance(recorder, Recorder):
        raise TypeError(f"recorder must be a Recorder, got {recorder!r}")
    for argument, extractor in (("usage", usage), ("size", size), ("clock", clock)):
        if extractor is not None and not callable(extractor):
            raise TypeError(f"{argument} must be callable, got {extractor!r}")
    if errors is not None and not (isinstance(errors, Mapping) or callable(errors)):
        raise TypeError(f"errors must be a mapping or a callable, got {errors!r}")

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        model_getter = _getter(func, model, "model")
        assert model_getter is not None
        measure = _Measure(
            recorder,
            model_getter,
            _getter(func, target, "target"),
            _getter(func, request_size, "request_size"),
            usage,
            size,
            errors,
            clock,
            _getter(func, fairness_id, "fairness_id"),
            _getter(func, priority, "priority"),
        )
        if inspect.isasyncgenfunction(func):
            return cast(Callable[P, R], _wrap_async_generator(func, measure))
        if inspect.isgeneratorfunction(func):
            return cast(Callable[P, R], _wrap_generator(func, measure))
        if inspect.iscoroutinefunction(func):
            return cast(Callable[P, R], _wrap_coroutine(func, measure))
        return _wrap_function(func, measure)

    return decorate


def _wrap_function(func: Callable[P, R], measure: _Measure) -> Callable[P, R]:
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        ctx = measure.begin(args, kwargs)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            measure.error(ctx, exc)
            raise
        measure.result(ctx, result)
        return result

    return wrapper


def _wrap_coroutine(func: Callable[..., Any], measure: _Measure) -> Callable[..., Any]:
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = measure.begin(args, kwargs)
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            measure.error(ctx, exc)
            raise
        measure.result(ctx, result)
        return result

    return wrapper


def _start_stream(
    func: Callable[..., Any], measure: _Measure, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[RequestContext, Any, _Guard]:
    """The call of a generator handler: the request starts now (the clock with it), not at the
    first iteration."""
    ctx = measure.begin(args, kwargs)
    ctx.set_streamed()
    try:
        inner = func(*args, **kwargs)
    except BaseException as exc:
        measure.error(ctx, exc)
        raise
    return ctx, inner, _Guard(ctx)


def _wrap_generator(func: Callable[..., Any], measure: _Measure) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> MeasuredStream:
        ctx, inner, guard = _start_stream(func, measure, args, kwargs)
        return MeasuredStream(_measured_generator(measure, ctx, inner, guard), ctx)

    return wrapper


_EXHAUSTED = object()


def _next_or_exhausted(generator: Generator[Any, None, Any]) -> Any:
    # StopIteration cannot cross a Future: the end of the stream travels as a sentinel.
    return next(generator, _EXHAUSTED)


class MeasuredStream(Generator[Any, None, Any]):
    """What a decorated sync generator handler returns: the measured generator, iterable both
    ways.

    Iterated synchronously it is the generator itself. Iterated asynchronously (``async for``,
    which is how Starlette's and FastAPI's ``StreamingResponse`` take an async iterable), each
    item is produced in the event loop's default executor thread, and a cancellation (the server
    cancels the response when the client leaves) cancels the request at once; the generator is
    then closed as soon as the item being produced is ready. A sync iterator in a thread pool
    is otherwise only ever closed by garbage collection, which kept ``running_requests`` up for
    minutes. Needs an asyncio event loop for the asynchronous path; its threads are the loop's
    default executor's (``loop.set_default_executor()`` sizes it).
    """

    __slots__ = ("_ctx", "_generator")

    def __init__(self, generator: Generator[Any, None, Any], ctx: RequestContext) -> None:
        self._generator = generator
        self._ctx = ctx

    def __next__(self) -> Any:
        return next(self._generator)

    def send(self, value: None) -> Any:
        return self._generator.send(value)

    def throw(self, *args: Any) -> Any:
        return self._generator.throw(*args)

    def close(self) -> None:
        self._generator.close()

    def __aiter__(self) -> MeasuredStream:
        return self

    async def __anext__(self) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, _next_or_exhausted, self._generator)
        try:
            item = await future
        except asyncio.CancelledError:
            self._ctx.cancel()
            # The thread may still be producing an item: close the generator once it is done.
            future.add_done_callback(lambda _: self._close_quietly())
            raise
        if item is _EXHAUSTED:
            raise StopAsyncIteration
        return item

    def _close_quietly(self) -> None:
        # The handler's own cleanup failing changes nothing: the request has ended.
        with contextlib.suppress(Exception):
            self._generator.close()


def _measured_generator(
    measure: _Measure, ctx: RequestContext, inner: Generator[Any, None, Any], guard: _Guard
) -> Generator[Any, None, Any]:
    # ``guard`` is held by this generator's frame from its creation: closing or dropping the
    # generator before its first iteration (the frame never runs) still cancels the request.
    try:
        for item in inner:
            measure.part(ctx, item)
            yield item
    except BaseException as exc:
        measure.error(ctx, exc)
        raise
    finally:
        inner.close()
    ctx.finish()


def _wrap_async_generator(func: Callable[..., Any], measure: _Measure) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        return _measured_async_generator(measure, *_start_stream(func, measure, args, kwargs))

    return wrapper


async def _measured_async_generator(
    measure: _Measure, ctx: RequestContext, inner: AsyncGenerator[Any, None], guard: _Guard
) -> AsyncGenerator[Any, None]:
    # ``guard``: as in _measured_generator.
    try:
        async for item in inner:
            measure.part(ctx, item)
            yield item
    except BaseException as exc:
        measure.error(ctx, exc)
        raise
    finally:
        await inner.aclose()
    ctx.finish()
