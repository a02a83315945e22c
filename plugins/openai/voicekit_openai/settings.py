"""Options of the OpenAI LLM provider (``[providers.openai]``)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from voicekit.provider import ProviderSettings, credential

__all__ = ["OpenAISettings"]


class OpenAISettings(ProviderSettings):
    api_key: SecretStr = credential("OPENAI_API_KEY")
    model: str = Field(default="gpt-4o-mini", description="Chat Completions model.")
    base_url: str = Field(default="https://api.openai.com/v1")
