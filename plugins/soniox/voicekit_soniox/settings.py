"""Options of the Soniox real-time STT provider (``[providers.soniox]``), per PROTOCOLS.md §2."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr

from voicekit.provider import ProviderSettings, credential

__all__ = ["SonioxSettings"]


class SonioxSettings(ProviderSettings):
    api_key: SecretStr = credential("SONIOX_API_KEY")
    model: str = Field(default="stt-rt-v5", description="Real-time model.")
    language_hints: list[str] = Field(default_factory=lambda: ["en"])
    context: str | dict[str, Any] | None = Field(
        default=None, description="Domain words and text that help recognition."
    )
    enable_endpoint_detection: bool = True
    max_endpoint_delay_ms: int = Field(
        default=800, ge=500, le=3000, description="Longest pause before an endpoint."
    )
    likely_over_ms: int = Field(
        default=100,
        ge=0,
        le=2000,
        description="Silence after the turn's last final word before voicekit reports the "
        "turn as likely over (for speculative replies); 0: never.",
    )
    api_key_in_config: bool = Field(
        default=False,
        description="Send the key in the config message (legacy) instead of the "
        "Authorization header.",
    )
    keepalive_s: float = Field(
        default=5.0, gt=0, le=15, description="Idle seconds before a keepalive is sent."
    )
    replay_s: float = Field(
        default=10.0,
        ge=0,
        le=60,
        description="Audio kept for re-sending after a reconnect (seconds).",
    )
    send_ms: int = Field(
        default=20,
        ge=20,
        le=200,
        description="Caller audio goes to Soniox in pieces of this many ms: 20 sends every "
        "frame as it arrives; 40 or 60 sends a message per two or three frames (fewer "
        "messages and system calls per call, so more calls per core) and the end of the "
        "caller's speech reaches Soniox up to that much later less 20 ms.",
    )
    url: str = Field(
        default="wss://stt-rt.soniox.com/transcribe-websocket",
        description="Real-time WebSocket URL.",
    )
