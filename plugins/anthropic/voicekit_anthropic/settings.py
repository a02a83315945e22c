"""Options of the Anthropic LLM provider (``[providers.anthropic]``)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from voicekit.provider import ProviderSettings, credential

__all__ = ["AnthropicSettings"]


class AnthropicSettings(ProviderSettings):
    api_key: SecretStr = credential("ANTHROPIC_API_KEY")
    model: str = Field(default="claude-haiku-4-5", description="Messages API model.")
    base_url: str = Field(default="https://api.anthropic.com", description="API base URL.")
    max_tokens: int = Field(
        default=1024,
        ge=1,
        description="Token limit of a reply when [agent] max_tokens is unset (the API "
        "requires one).",
    )
    cache_prompt: bool = Field(
        default=True,
        description="Mark the system prompt and the tools for Anthropic's prompt cache "
        '(cache_control {"type": "ephemeral"}), so every turn after the first reads them '
        "from the cache.",
    )
