"""Options of the Anthropic LLM provider (``[providers.anthropic]``)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from voicekit.provider import ProviderSettings, credential

__all__ = ["AnthropicSettings"]


class AnthropicSettings(ProviderSettings):
    api_key: SecretStr = credential("ANTHROPIC_API_KEY")
    model: str = Field(default="claude-haiku-4-5", description="Messages API model.")
    base_url: str = Field(default="https://api.anthropic.com")
