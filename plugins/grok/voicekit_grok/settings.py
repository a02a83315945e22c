"""Options of the xAI Grok LLM provider (``[providers.grok]``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from voicekit_openai.settings import OpenAISettings

from voicekit.provider import credential

__all__ = ["GrokSettings"]


class GrokSettings(OpenAISettings):
    """The OpenAI provider's options (xAI's API is OpenAI-compatible), with xAI's key,
    address and a fast non-reasoning model (PROTOCOLS.md §4b)."""

    api_key: SecretStr = credential("XAI_API_KEY")
    model: str = Field(default="grok-4.20-non-reasoning", description="Grok model.")
    base_url: str = Field(default="https://api.x.ai/v1", description="xAI's API base URL.")
