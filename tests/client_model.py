"""An independent decoder of the Prometheus protobuf exposition, for tests only.

The message classes are built at import from a descriptor written here with
``google.protobuf.descriptor_pb2`` after prometheus/client_model's schema
(``io/prometheus/client/metrics.proto``, proto2: field numbers, types and labels as there),
and parsed by the ``protobuf`` package, not by anything of ours.

``decode_stream(data) -> list[MetricFamily]`` splits a length-delimited stream (each message
preceded by its length as a varint) and parses every message; ``MetricFamily``, ``Metric`` ...
are the generated classes. ``MetricType`` holds the enum's numbers.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

__all__ = ["Histogram", "MetricFamily", "MetricType", "decode_stream"]

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_TYPES = {
    "string": _F.TYPE_STRING,
    "double": _F.TYPE_DOUBLE,
    "uint64": _F.TYPE_UINT64,
    "uint32": _F.TYPE_UINT32,
    "int64": _F.TYPE_INT64,
    "sint32": _F.TYPE_SINT32,
    "sint64": _F.TYPE_SINT64,
}

# message -> [(field name, number, repeated?, type: a scalar name, or a message/enum name)]
_MESSAGES: dict[str, list[tuple[str, int, bool, str]]] = {
    "LabelPair": [("name", 1, False, "string"), ("value", 2, False, "string")],
    "Gauge": [("value", 1, False, "double")],
    "Counter": [
        ("value", 1, False, "double"),
        ("exemplar", 2, False, "Exemplar"),
        ("created_timestamp", 3, False, ".google.protobuf.Timestamp"),
    ],
    "Quantile": [("quantile", 1, False, "double"), ("value", 2, False, "double")],
    "Summary": [
        ("sample_count", 1, False, "uint64"),
        ("sample_sum", 2, False, "double"),
        ("quantile", 3, True, "Quantile"),
        ("created_timestamp", 4, False, ".google.protobuf.Timestamp"),
    ],
    "Untyped": [("value", 1, False, "double")],
    "Histogram": [
        ("sample_count", 1, False, "uint64"),
        ("sample_count_float", 4, False, "double"),
        ("sample_sum", 2, False, "double"),
        ("bucket", 3, True, "Bucket"),
        ("created_timestamp", 15, False, ".google.protobuf.Timestamp"),
        ("schema", 5, False, "sint32"),
        ("zero_threshold", 6, False, "double"),
        ("zero_count", 7, False, "uint64"),
        ("zero_count_float", 8, False, "double"),
        ("negative_span", 9, True, "BucketSpan"),
        ("negative_delta", 10, True, "sint64"),
        ("negative_count", 11, True, "double"),
        ("positive_span", 12, True, "BucketSpan"),
        ("positive_delta", 13, True, "sint64"),
        ("positive_count", 14, True, "double"),
        ("exemplars", 16, True, "Exemplar"),
    ],
    "Bucket": [
        ("cumulative_count", 1, False, "uint64"),
        ("cumulative_count_float", 4, False, "double"),
        ("upper_bound", 2, False, "double"),
        ("exemplar", 3, False, "Exemplar"),
    ],
    "BucketSpan": [("offset", 1, False, "sint32"), ("length", 2, False, "uint32")],
    "Exemplar": [
        ("label", 1, True, "LabelPair"),
        ("value", 2, False, "double"),
        ("timestamp", 3, False, ".google.protobuf.Timestamp"),
    ],
    "Metric": [
        ("label", 1, True, "LabelPair"),
        ("gauge", 2, False, "Gauge"),
        ("counter", 3, False, "Counter"),
        ("summary", 4, False, "Summary"),
        ("untyped", 5, False, "Untyped"),
        ("histogram", 7, False, "Histogram"),
        ("timestamp_ms", 6, False, "int64"),
    ],
    "MetricFamily": [
        ("name", 1, False, "string"),
        ("help", 2, False, "string"),
        ("type", 3, False, "MetricType"),
        ("metric", 4, True, "Metric"),
        ("unit", 5, False, "string"),
    ],
}
_ENUM = [("COUNTER", 0), ("GAUGE", 1), ("SUMMARY", 2), ("UNTYPED", 3), ("HISTOGRAM", 4)]
_ENUM.append(("GAUGE_HISTOGRAM", 5))


def _file() -> descriptor_pb2.FileDescriptorProto:
    package = "io.prometheus.client"
    proto = descriptor_pb2.FileDescriptorProto(
        name="tests/client_model_metrics.proto",
        package=package,
        syntax="proto2",
        dependency=["google/protobuf/timestamp.proto"],
    )
    enum = proto.enum_type.add(name="MetricType")
    for name, number in _ENUM:
        enum.value.add(name=name, number=number)
    for message_name, fields in _MESSAGES.items():
        message = proto.message_type.add(name=message_name)
        for name, number, repeated, kind in fields:
            spec = message.field.add(
                name=name, number=number, label=_REPEATED if repeated else _OPTIONAL
            )
            if kind in _TYPES:
                spec.type = _TYPES[kind]
            elif kind == "MetricType":
                spec.type = _F.TYPE_ENUM
                spec.type_name = f".{package}.MetricType"
            else:
                spec.type = _F.TYPE_MESSAGE
                spec.type_name = kind if kind.startswith(".") else f".{package}.{kind}"
    return proto


_pool = descriptor_pool.DescriptorPool()
_pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
_pool.Add(_file())


def _class(name: str) -> Any:
    return message_factory.GetMessageClass(
        _pool.FindMessageTypeByName(f"io.prometheus.client.{name}")
    )


MetricFamily: Any = _class("MetricFamily")
Histogram: Any = _class("Histogram")


class MetricType:
    COUNTER, GAUGE, SUMMARY, UNTYPED, HISTOGRAM, GAUGE_HISTOGRAM = range(6)


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def decode_stream(data: bytes) -> list[Any]:
    """Every ``MetricFamily`` of a length-delimited stream, parsed by the protobuf package."""
    families = []
    position = 0
    while position < len(data):
        length, position = _read_varint(data, position)
        if position + length > len(data):
            raise ValueError(f"a message of {length} bytes overruns the stream at {position}")
        family = MetricFamily()
        family.ParseFromString(data[position : position + length])
        families.append(family)
        position += length
    return families
