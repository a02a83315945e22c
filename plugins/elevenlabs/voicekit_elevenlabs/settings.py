"""Options of the ElevenLabs providers (``[providers.elevenlabs]``).

Names and ranges follow the ElevenLabs WebSocket API (PROTOCOLS.md §1). The output
format is not an option: it is chosen per call by format negotiation, so a PCMU call
gets ``ulaw_8000`` and needs no transcoding at all.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from voicekit.provider import ProviderSettings, credential

__all__ = ["ElevenLabsSettings", "VoiceSettings"]


class VoiceSettings(BaseModel):
    """Sent once, in each context's first message, and never changed afterwards."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stability: float = Field(default=0.5, ge=0.0, le=1.0)
    similarity_boost: float = Field(default=0.75, ge=0.0, le=1.0)
    style: float = Field(default=0.0, ge=0.0, le=1.0)
    use_speaker_boost: bool = True
    speed: float = Field(default=1.0, ge=0.7, le=1.2)


class ElevenLabsSettings(ProviderSettings):
    api_key: SecretStr = credential("ELEVENLABS_API_KEY")
    voice_id: str = Field(default="21m00Tcm4TlvDq8ikWAM", min_length=1, description="Voice.")
    model_id: str = Field(
        default="eleven_flash_v2_5",
        description="Model; the WebSocket endpoints do not support eleven_v3.",
    )
    voice_settings: VoiceSettings = Field(default_factory=VoiceSettings)
    language_code: str | None = Field(default=None, description="ISO 639-1, some models only.")
    enable_ssml_parsing: bool = False
    apply_text_normalization: Literal["auto", "on", "off"] = "auto"
    chunk_length_schedule: list[int] = Field(
        default_factory=lambda: [50, 120, 160, 250],
        description="Characters buffered before each generation; a small first value "
        "gets the first audio out sooner.",
    )
    inactivity_timeout: int = Field(default=180, ge=5, le=180, description="Seconds.")
    keepalive_interval_s: float | None = Field(
        default=None,
        gt=0,
        description="Idle seconds before a keepalive (default: a third "
        "of inactivity_timeout, at most 60).",
    )
    url: str = Field(default="wss://api.elevenlabs.io", description="WebSocket base URL.")
    rest_url: str = Field(default="https://api.elevenlabs.io", description="REST base URL.")

    @field_validator("chunk_length_schedule")
    @classmethod
    def _schedule_in_range(cls, value: list[int]) -> list[int]:
        if not value or any(not 50 <= n <= 500 for n in value):
            raise ValueError("each chunk length must be between 50 and 500 characters")
        return value

    @field_validator("model_id")
    @classmethod
    def _streaming_model(cls, value: str) -> str:
        if value == "eleven_v3":
            raise ValueError(
                "eleven_v3 is not available on the streaming WebSocket; use "
                "eleven_flash_v2_5 (lowest latency) or eleven_turbo_v2_5"
            )
        return value
