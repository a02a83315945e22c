"""Text to audio in any format with the local voice: the simulated caller's voice."""

from __future__ import annotations

from voicekit.audio import AudioConverter, AudioFormat
from voicekit_local.tts import LocalTTS

__all__ = ["speak"]


async def speak(text: str, fmt: AudioFormat, tts: LocalTTS | None = None) -> bytes:
    """``text`` spoken by the local voice, converted to ``fmt``."""
    tts = tts or LocalTTS()
    native = tts.output_formats[0]
    audio = bytearray()
    async with tts.session(native, call_id="speak") as session:
        utterance = session.utterance()
        await utterance.push_text(text.strip() + " ")
        await utterance.end()
        async for chunk in utterance:
            audio += chunk.data
    converter = AudioConverter(native, fmt)
    return converter.process(bytes(audio)) + converter.flush()
