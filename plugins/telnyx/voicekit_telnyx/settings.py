"""Options of the Telnyx telephony provider (``[providers.telnyx]``), per PROTOCOLS.md §3."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from voicekit.provider import ProviderSettings, credential

__all__ = ["TelnyxSettings"]


class TelnyxSettings(ProviderSettings):
    api_key: SecretStr = credential("TELNYX_API_KEY")
    public_key: SecretStr = credential(
        "TELNYX_PUBLIC_KEY", description="Base64 Ed25519 key that signs webhooks."
    )
    connection_id: str | None = Field(default=None, description="For outbound dialling.")
    from_number: str | None = Field(default=None, description="E.164 caller id for dialling.")
    codec: Literal["PCMU", "PCMA", "L16"] = Field(
        default="PCMU", description="Bidirectional media codec."
    )
    webhook_tolerance_s: int = Field(
        default=300, ge=1, le=3600, description="Largest accepted webhook clock skew."
    )
    l16_byte_order: Literal["little", "big"] = Field(
        default="little",
        description="Byte order of L16 media (Telnyx's is unverified; RTP's is big-endian).",
    )
    answering_machine_detection: Literal["detect", "detect_beep", "premium", "disabled"] = Field(
        default="detect", description="Answering-machine detection on outbound calls."
    )
    base_url: str = Field(default="https://api.telnyx.com/v2", description="Call Control base.")
    media_token_in_url: bool = Field(
        default=False,
        description="Also put the media token in the stream URL's query string. Telnyx sends "
        "it as a header and in its first frame, so the URL (which proxies log) need not.",
    )

    @field_validator("public_key")
    @classmethod
    def _public_key_is_ed25519(cls, value: SecretStr) -> SecretStr:
        """Checked with the settings, so ``config check`` refuses what ``serve`` would."""
        from voicekit_telnyx.webhooks import WebhookVerificationError, decode_public_key

        try:
            decode_public_key(value.get_secret_value())
        except WebhookVerificationError as exc:
            raise ValueError(
                f"{exc}: use the base64 Ed25519 public key from Mission Control "
                "(Account > Public key), in TELNYX_PUBLIC_KEY or [providers.telnyx] public_key"
            ) from None
        return value
