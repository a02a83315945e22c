"""Expose a piper voice's phoneme durations as a model output, on the model's bytes.

Piper's own patch (``piper.patch_voice_with_alignment``) marks the graph's one ``Ceil``
tensor (the samples each phoneme lasts) as a graph output, through the ``onnx`` package,
whose import alone takes about 0.6 s (most of it ``ml_dtypes``) in every process that
speaks. The change is one entry appended to a repeated protobuf field, so this does it
on the serialized model: it reads the wire format as far as the graph's nodes and
outputs (skipping the weights without copying them), then appends a second ``graph``
field holding only the new output. Protobuf parsers merge repeated occurrences of a
message field (onnxruntime's does), so the model loads with that output added.

Field numbers are those of onnx.proto3: ``ModelProto.graph`` 7, ``GraphProto.node`` 1
and ``output`` 12, ``NodeProto.output`` 2 and ``op_type`` 4, ``ValueInfoProto.name`` 1.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["AlignmentPatchError", "with_alignment_output"]

_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_OUTPUT = 1, 12
_NODE_OUTPUT, _NODE_OP_TYPE = 2, 4
_VALUE_INFO_NAME = 1
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
# A piper voice has a few thousand nodes; a file of millions is not one, and reading it
# field by field would hold the engine's load lock for most of a minute.
MAX_NODES = 100_000


class AlignmentPatchError(ValueError):
    """The model is not one this patch understands (no single Ceil tensor, or bytes
    that are not a well-formed model)."""


def with_alignment_output(model: bytes) -> tuple[bytes, bool]:
    """``model`` with its phoneme-duration tensor as an extra graph output, and whether
    it had to be added (False: the model file was patched already, returned as it is)."""
    view = memoryview(model)
    ceil_outputs: set[bytes] = set()
    outputs: set[bytes] = set()
    nodes = 0
    for graph in _values(view, _MODEL_GRAPH):
        for node in _values(graph, _GRAPH_NODE):
            nodes += 1
            if nodes > MAX_NODES:
                raise AlignmentPatchError(f"more than {MAX_NODES} nodes: not a piper voice")
            if any(bytes(t) == b"Ceil" for t in _values(node, _NODE_OP_TYPE)):
                ceil_outputs.update(bytes(o) for o in _values(node, _NODE_OUTPUT))
        for output in _values(graph, _GRAPH_OUTPUT):
            outputs.update(bytes(n) for n in _values(output, _VALUE_INFO_NAME))
    if len(ceil_outputs) != 1:
        raise AlignmentPatchError(f"expected one Ceil tensor, found {len(ceil_outputs)}")
    name = next(iter(ceil_outputs))
    if name in outputs:
        return model, False
    value_info = _field(_VALUE_INFO_NAME, name)
    return model + _field(_MODEL_GRAPH, _field(_GRAPH_OUTPUT, value_info)), True


def _values(message: memoryview, number: int) -> Iterator[memoryview]:
    """The length-delimited values of field ``number`` in ``message``, in order."""
    for field, wire_type, value in _fields(message):
        if field == number:
            if wire_type != _LENGTH:
                raise AlignmentPatchError(f"field {number} is not length-delimited")
            assert isinstance(value, memoryview)
            yield value


def _fields(message: memoryview) -> Iterator[tuple[int, int, memoryview | int]]:
    """(field number, wire type, value) of each field of ``message``; a length-delimited
    value is a view into ``message``, not a copy."""
    at, end = 0, len(message)
    while at < end:
        key, at = _varint(message, at)
        field, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, at = _varint(message, at)
            yield field, wire_type, value
        elif wire_type == _LENGTH:
            size, at = _varint(message, at)
            if at + size > end:
                raise AlignmentPatchError("a field runs past the end of its message")
            yield field, wire_type, message[at : at + size]
            at += size
        elif wire_type in (_FIXED64, _FIXED32):
            at += 8 if wire_type == _FIXED64 else 4
            if at > end:
                raise AlignmentPatchError("a field runs past the end of its message")
        else:  # groups (3, 4) are not in onnx.proto; anything else is not protobuf
            raise AlignmentPatchError(f"unexpected wire type {wire_type}")


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise AlignmentPatchError("a malformed varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: key, length, payload."""
    return _encode_varint(number << 3 | _LENGTH) + _encode_varint(len(payload)) + payload


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
