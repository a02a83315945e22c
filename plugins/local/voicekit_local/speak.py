"""Text to audio in any format with the local voice: the simulated caller's voice."""

from __future__ import annotations

from voicekit.audio import AudioFormat
from voicekit.tts import speak as speak_with
from voicekit_local.tts import LocalTTS

__all__ = ["speak"]


async def speak(text: str, fmt: AudioFormat, tts: LocalTTS | None = None) -> bytes:
    """``text`` spoken by the local voice (or ``tts``), converted to ``fmt``."""
    return await speak_with(tts or LocalTTS(), text, fmt)
