"""Options of the xAI Grok LLM provider (``[providers.grok]``)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from voicekit.provider import ProviderSettings, credential

__all__ = ["GrokSettings"]


class GrokSettings(ProviderSettings):
    api_key: SecretStr = credential("XAI_API_KEY")
    model: str = Field(default="grok-4-fast-non-reasoning", description="Grok model.")
    base_url: str = Field(default="https://api.x.ai/v1")
