"""The ``openai`` LLM provider: Chat Completions streaming through the official SDK.

One ``AsyncOpenAI`` client per provider, shared by every call of the process; its own
retries are off, so the core's policy decides (voicekit.retry: only before any of the
reply reached the TTS). Text streams as it arrives; tool-call deltas (several calls,
arguments in fragments, indexes interleaved) are assembled into whole calls; usage comes
from the last chunk (``stream_options.include_usage``), cached prompt tokens included.
``base_url`` points it at any OpenAI-compatible server (vLLM, llama.cpp, Ollama).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, ClassVar

from voicekit.errors import ProviderError, ProviderTimeoutError, ProviderUnavailable
from voicekit.llm import LLM, LLMEvent, Message, TextDelta, Tool, Usage
from voicekit.provider import ProviderSettings
from voicekit.provider_errors import network_error, retry_after_s, status_error
from voicekit_openai.convert import ToolCallAssembler, chat_messages, chat_tools
from voicekit_openai.settings import OpenAISettings

__all__ = ["OpenAILLM", "sdk_error"]

logger = logging.getLogger(__name__)
OPENAI_HOST = "api.openai.com"
PREWARM_TIMEOUT_S = 5.0


def sdk_error(exc: Exception, *, provider: str, label: str, key_env: str) -> ProviderError:
    """An ``openai`` SDK exception through the core's one error mapping."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        return status_error(
            exc.status_code,
            f"{label} refused the request (HTTP {exc.status_code})",
            provider=provider,
            key_env=key_env,
            retry_after=retry_after_s(exc.response.headers),
            code=str(exc.code) if getattr(exc, "code", None) else None,
            detail=str(getattr(exc, "message", "") or exc),
        )
    if isinstance(exc, openai.APITimeoutError):
        return ProviderTimeoutError(f"{label} did not answer in time", provider=provider)
    if isinstance(exc, openai.APIConnectionError):
        return network_error(exc.__cause__ or exc, provider=provider, label=label)
    # An error event in the middle of a stream (the SDK raises APIError for it).
    return ProviderUnavailable(f"{label} failed mid-reply: {exc}", provider=provider)


class _Client:
    """The SDK client, made on first use and shared by the provider's per-call views."""

    def __init__(self) -> None:
        self.sdk: Any = None


class OpenAILLM(LLM[OpenAISettings]):
    name: ClassVar[str] = "openai"
    Settings: ClassVar[type[ProviderSettings]] = OpenAISettings
    label: ClassVar[str] = "OpenAI"
    key_env: ClassVar[str] = "OPENAI_API_KEY"

    def __init__(self, settings: OpenAISettings | None = None) -> None:
        super().__init__(settings)
        self._client = _Client()
        self._conversation: str | None = None

    @property
    def client(self) -> Any:
        if self._client.sdk is None:
            import openai

            s = self.settings
            self._client.sdk = openai.AsyncOpenAI(
                api_key=s.api_key.get_secret_value(),
                base_url=s.base_url,
                organization=s.organization,
                timeout=s.timeout,
                max_retries=0,  # the core's retry policy decides
            )
        return self._client.sdk

    def for_call(self, call_id: str) -> OpenAILLM:
        view = copy.copy(self)  # shares the client (one pool for the process)
        view._conversation = call_id
        return view

    def extra_headers(self) -> dict[str, str]:
        """Headers for one call's requests (Grok keys its prompt cache by conversation)."""
        return {}

    @property
    def _is_openai(self) -> bool:
        return OPENAI_HOST in self.settings.base_url

    async def prewarm(self) -> None:
        """Open the pooled connection (TCP and TLS) with a cheap authenticated request."""
        import anyio

        with anyio.move_on_after(PREWARM_TIMEOUT_S):
            try:
                await self.client.models.list()
            except Exception as exc:
                raise sdk_error(
                    exc, provider=self.name, label=self.label, key_env=self.key_env
                ) from None

    def request(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool] | None,
        max_tokens: int | None,
        temperature: float | None,
    ) -> dict[str, Any]:
        """The ``chat.completions.create`` arguments for one reply."""
        s = self.settings
        request: dict[str, Any] = {
            "model": s.model,
            "messages": chat_messages(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            request["tools"] = chat_tools(tools)
        if max_tokens is not None:
            limit = s.token_limit
            if limit == "auto":
                limit = "max_completion_tokens" if self._is_openai else "max_tokens"
            request[limit] = max_tokens
        if temperature is not None:
            request["temperature"] = temperature
        cache_key = s.prompt_cache_key
        if cache_key is None and self._is_openai:
            cache_key = _instructions_key(messages)
        if cache_key:
            request["prompt_cache_key"] = cache_key
        extra_headers = self.extra_headers()
        if extra_headers:
            request["extra_headers"] = extra_headers
        if s.extra_body:
            request["extra_body"] = dict(s.extra_body)
        return request

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Tool] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> AsyncIterator[LLMEvent]:
        import openai

        request = self.request(messages, tools, max_tokens, temperature)
        try:
            response = await self.client.chat.completions.create(**request)
        except openai.OpenAIError as exc:
            raise sdk_error(
                exc, provider=self.name, label=self.label, key_env=self.key_env
            ) from None
        assembler = ToolCallAssembler()
        calls_sent = False
        async with contextlib.aclosing(_events(response)) as events:
            try:
                async for chunk in events:
                    usage = chunk.usage
                    if usage is not None:
                        details = getattr(usage, "prompt_tokens_details", None)
                        yield Usage(
                            input_tokens=usage.prompt_tokens,
                            output_tokens=usage.completion_tokens,
                            cached_input_tokens=getattr(details, "cached_tokens", None),
                        )
                    for choice in chunk.choices:
                        delta = choice.delta
                        if delta is not None and delta.content:
                            yield TextDelta(delta.content)
                        for tc in (delta.tool_calls if delta is not None else None) or []:
                            fn = tc.function
                            assembler.add(
                                tc.index,
                                tc.id,
                                fn.name if fn else None,
                                fn.arguments if fn else None,
                            )
                        if choice.finish_reason == "tool_calls" and not calls_sent:
                            calls_sent = True
                            for call in assembler.calls():
                                yield call
            except openai.OpenAIError as exc:
                raise sdk_error(
                    exc, provider=self.name, label=self.label, key_env=self.key_env
                ) from None
        if not calls_sent:  # a server that ends without finish_reason "tool_calls"
            for call in assembler.calls():
                yield call

    async def aclose(self) -> None:
        if self._client.sdk is not None:
            await self._client.sdk.close()
            self._client.sdk = None


async def _events(response: Any) -> AsyncGenerator[Any, None]:
    """The SDK's stream as an async generator that closes its response when closed."""
    try:
        async for chunk in response:
            yield chunk
    finally:
        await response.close()


def _instructions_key(messages: Sequence[Message]) -> str | None:
    """A stable cache key per agent: a hash of the system message."""
    system = next((m.content for m in messages if m.role == "system"), "")
    if not system:
        return None
    return "voicekit-" + hashlib.sha256(system.encode()).hexdigest()[:24]
