"""The ``soniox`` STT provider: real-time recognition in the call's own codec."""

from __future__ import annotations

from typing import ClassVar

from voicekit.audio import ALAW_8K, PCM_8K, PCM_16K, PCM_24K, ULAW_8K, AudioFormat
from voicekit.provider import ProviderSettings
from voicekit.stt import STT
from voicekit_soniox.settings import SonioxSettings
from voicekit_soniox.stream import SonioxStream

__all__ = ["SonioxSTT"]


class SonioxSTT(STT[SonioxSettings]):
    """Soniox takes mulaw, alaw and PCM at any rate, so telephony audio passes untouched."""

    name: ClassVar[str] = "soniox"
    Settings: ClassVar[type[ProviderSettings]] = SonioxSettings

    @property
    def input_formats(self) -> tuple[AudioFormat, ...]:
        return (ULAW_8K, ALAW_8K, PCM_16K, PCM_8K, PCM_24K)

    def stream(self, fmt: AudioFormat, *, call_id: str | None = None) -> SonioxStream:
        return SonioxStream(self.settings, fmt, call_id, self.retry_policy)
