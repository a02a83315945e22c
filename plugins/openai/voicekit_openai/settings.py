"""Options of the OpenAI LLM provider (``[providers.openai]``)."""

from __future__ import annotations

from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_core import InitErrorDetails

from voicekit.provider import ProviderSettings, credential

__all__ = ["OPENAI_HOST", "OpenAISettings", "is_openai"]


OPENAI_HOST = "api.openai.com"


def is_openai(base_url: str) -> bool:
    """Whether ``base_url`` is OpenAI's own API (not another OpenAI-compatible server)."""
    return (urlsplit(base_url.strip()).hostname or "") == OPENAI_HOST


class OpenAISettings(ProviderSettings):
    api_key: SecretStr | None = credential(
        "OPENAI_API_KEY",
        required=False,
        description="API key (env OPENAI_API_KEY); may be left out for a self-hosted "
        "server at base_url that does not check keys.",
    )
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

    @model_validator(mode="after")
    def _key_for_openai(self) -> Self:
        """OpenAI's own service needs the key; a self-hosted server may not."""
        if self.api_key is None and is_openai(self.base_url):
            missing = InitErrorDetails(type="missing", loc=("api_key",), input=None)
            raise ValidationError.from_exception_data(type(self).__name__, [missing])
        return self
