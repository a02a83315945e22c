"""The piper voice's phoneme durations exposed on the model's bytes (no onnx package)."""

from __future__ import annotations

import pytest
from voicekit_local.alignment_output import (
    AlignmentPatchError,
    _field,
    _fields,
    with_alignment_output,
)
from voicekit_local.piper_engine import default_voice_model


def node(op_type: str, *outputs: str) -> bytes:
    return _field(4, op_type.encode()) + b"".join(_field(2, o.encode()) for o in outputs)


def model(*nodes: bytes, outputs: tuple[str, ...] = ("audio",)) -> bytes:
    graph = b"".join(_field(1, n) for n in nodes)
    graph += b"".join(_field(12, _field(1, o.encode())) for o in outputs)
    return b"\x08\x07" + _field(7, graph)  # ir_version 7, then the graph


def graph_outputs(data: bytes) -> list[str]:
    """The graph's output names as a protobuf parser merging the graph fields sees them."""
    names = []
    for number, _, graph in _fields(memoryview(data)):
        if number == 7:
            assert isinstance(graph, memoryview)
            for field, _, output in _fields(graph):
                if field == 12:
                    assert isinstance(output, memoryview)
                    names += [bytes(v).decode() for f, _, v in _fields(output) if f == 1]  # type: ignore[arg-type]
    return names


def test_the_ceil_tensor_becomes_an_output_once() -> None:
    original = model(node("MatMul", "m"), node("Ceil", "durations"), node("Mul", "audio"))
    patched, added = with_alignment_output(original)
    assert added and patched.startswith(original)  # appended: the weights are not copied
    assert graph_outputs(patched) == ["audio", "durations"]
    assert with_alignment_output(patched) == (patched, False)  # already patched


@pytest.mark.parametrize(
    "data, why",
    [
        (model(node("Mul", "audio")), "found 0"),
        (model(node("Ceil", "a"), node("Ceil", "b")), "found 2"),
        (model(node("Ceil", "a"))[:-3], "past the end"),
        (b"\x08" + b"\xff" * 12, "varint"),
        (b"\x0b", "wire type 3"),
    ],
)
def test_a_model_it_does_not_understand_is_a_clear_error(data: bytes, why: str) -> None:
    with pytest.raises(AlignmentPatchError, match=why):
        with_alignment_output(data)


def test_the_voice_loads_with_its_durations_as_an_output() -> None:
    import onnxruntime

    patched, added = with_alignment_output(default_voice_model().read_bytes())
    session = onnxruntime.InferenceSession(patched, providers=["CPUExecutionProvider"])
    assert added and [o.name for o in session.get_outputs()] == ["output", "/Ceil_output_0"]
