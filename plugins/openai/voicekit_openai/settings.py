"""Options of the OpenAI LLM provider (``[providers.openai]``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr

from voicekit.provider import ProviderSettings, credential

__all__ = ["OpenAISettings"]


class OpenAISettings(ProviderSettings):
    api_key: SecretStr = credential("OPENAI_API_KEY")
    model: str = Field(
        default="gpt-4.1-mini", description="Chat Completions model: small and fast for calls."
    )
    base_url: str = Field(
        default="https://api.openai.com/v1",
        description="Any OpenAI-compatible server: vLLM, llama.cpp, Ollama (…/v1).",
    )
    organization: str | None = Field(default=None, description="OpenAI organization id.")
    token_limit: Literal["auto", "max_tokens", "max_completion_tokens"] = Field(
        default="auto",
        description="How the reply's token limit is sent: auto uses max_completion_tokens "
        "with OpenAI (reasoning models need it) and max_tokens with other servers.",
    )
    prompt_cache_key: str | None = Field(
        default=None,
        description="Routes requests to the same prompt cache (OpenAI); default: the agent's "
        "instructions' hash, so every call of an agent shares one.",
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="Fields added to each request as they are, for provider-specific knobs "
        "(e.g. reasoning_effort, or a local server's options).",
    )
