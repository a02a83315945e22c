"""What the ElevenLabs emulator says: output formats, deterministic audio and alignment."""

from __future__ import annotations

import base64
from typing import Any

from voicekit.audio import AudioFormat
from voicekit.testing.fake_tts import synthesize

__all__ = ["OUTPUT_FORMATS", "audio_messages"]

# output_format value -> raw format; MP3 and Opus are not emulated (voicekit never asks).
OUTPUT_FORMATS: dict[str, AudioFormat] = {
    "ulaw_8000": AudioFormat("mulaw", 8000),
    "alaw_8000": AudioFormat("alaw", 8000),
    **{f"pcm_{r}": AudioFormat("pcm_s16le", r) for r in (8000, 16000, 22050, 24000, 44100)},
}


def audio_messages(
    text: str,
    fmt: AudioFormat,
    *,
    ms_per_char: float,
    chars_per_chunk: int,
    context_id: str | None,
) -> list[dict[str, Any]]:
    """AudioOutput messages speaking ``text``: one per ``chars_per_chunk`` characters, each
    with alignment relative to its own chunk (times in ms)."""
    out: list[dict[str, Any]] = []
    for start in range(0, len(text), chars_per_chunk):
        piece = text[start : start + chars_per_chunk]
        audio = synthesize(piece, fmt, ms_per_char)
        alignment = {
            "chars": list(piece),
            "charStartTimesMs": [round(i * ms_per_char) for i in range(len(piece))],
            "charDurationsMs": [round(ms_per_char)] * len(piece),
        }
        message: dict[str, Any] = {
            "audio": base64.b64encode(audio).decode("ascii"),
            "isFinal": False,
            "normalizedAlignment": alignment,
            "alignment": alignment,
        }
        if context_id is not None:
            message["contextId"] = context_id
        out.append(message)
    return out
