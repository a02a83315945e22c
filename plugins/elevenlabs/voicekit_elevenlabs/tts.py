"""The ``elevenlabs`` TTS provider: streaming synthesis over ``multi-stream-input``."""

from __future__ import annotations

from typing import Any, ClassVar

from voicekit.audio import AudioFormat
from voicekit.provider import ProviderSettings
from voicekit.tts import TTS
from voicekit_elevenlabs.formats import OUTPUT_FORMATS
from voicekit_elevenlabs.session import ElevenLabsSession
from voicekit_elevenlabs.settings import ElevenLabsSettings

__all__ = ["ElevenLabsTTS"]


class ElevenLabsTTS(TTS[ElevenLabsSettings]):
    """One persistent WebSocket per call; see :mod:`voicekit_elevenlabs.session`."""

    name: ClassVar[str] = "elevenlabs"
    Settings: ClassVar[type[ProviderSettings]] = ElevenLabsSettings

    @property
    def output_formats(self) -> tuple[AudioFormat, ...]:
        return tuple(OUTPUT_FORMATS)

    def session(self, fmt: AudioFormat, *, call_id: str | None = None) -> ElevenLabsSession:
        return ElevenLabsSession(self.settings, fmt, call_id, self.retry_policy)

    def voice_identity(self) -> dict[str, Any]:
        """The voice, model, everything sent with the text, and the service's URL (an
        emulator's or a staging service's audio must never play to real callers); not
        timeouts or keepalives."""
        return self.settings.model_dump(
            mode="json",
            include={
                "voice_id",
                "model_id",
                "voice_settings",
                "language_code",
                "enable_ssml_parsing",
                "apply_text_normalization",
                "chunk_length_schedule",
                "url",
            },
        )
