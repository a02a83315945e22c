"""The ``openai`` LLM provider: Chat Completions streaming through the official SDK.

One ``AsyncOpenAI`` client per provider, shared by every call of the process; its own
retries are off, so the core's policy decides (voicekit.retry: only before any of the
reply reached the TTS). The SDK makes the request; the stream's chunks are read by
:mod:`voicekit_openai.chunks` (text as it arrives, tool-call deltas assembled into whole
calls, usage from the last chunk with ``stream_options.include_usage``, cached prompt
tokens included).
``base_url`` points it at any OpenAI-compatible server (vLLM, llama.cpp, Ollama).
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from voicekit.errors import ProviderError, ProviderTimeoutError, ProviderUnavailable
from voicekit.llm import LLM, LLMEvent, Message, Tool
from voicekit.provider import ProviderSettings
from voicekit.provider_errors import network_error, retry_after_s, status_error
from voicekit.sse import EventTooLarge, sse_events
from voicekit.tls import HTTP1_ALPN, client_tls
from voicekit_openai.chunks import ChunkReader
from voicekit_openai.convert import chat_messages, chat_tools
from voicekit_openai.settings import OpenAISettings, is_openai

__all__ = ["OpenAILLM", "sdk_error"]

logger = logging.getLogger(__name__)
PREWARM_TIMEOUT_S = 5.0


def sdk_error(exc: Exception, *, provider: str, label: str, key_env: str) -> ProviderError:
    """An ``openai`` SDK exception through the core's one error mapping."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        return status_error(
            exc.status_code,
            f"{label} refused the request",
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
        # The SDK takes a few hundred ms to import: pay that when the server starts,
        # not in the first call's first turn.
        import openai  # noqa: F401

    @property
    def client(self) -> Any:
        if self._client.sdk is None:
            import openai

            s = self.settings
            self._client.sdk = openai.AsyncOpenAI(
                # The SDK insists on a key; a self-hosted server without keys ignores it.
                api_key=s.api_key.get_secret_value() if s.api_key else "no-key",
                base_url=s.base_url,
                organization=s.organization,
                timeout=s.timeout,
                max_retries=0,  # the core's retry policy decides
                # The process's shared TLS context: the SDK would build its own, a
                # whole CA bundle (15-20 ms of CPU), for every client.
                http_client=openai.DefaultAsyncHttpxClient(verify=client_tls(HTTP1_ALPN)),
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
        return is_openai(self.settings.base_url)

    @property
    def server(self) -> str:
        """Who errors name: the provider's service, or the server ``base_url`` points at."""
        base = urlsplit(self.settings.base_url)
        service = urlsplit(type(self).Settings.model_fields["base_url"].default or "")
        if (base.hostname or "") == (service.hostname or ""):
            return self.label
        return f"the server at {base.hostname}"

    async def prewarm(self) -> None:
        """Open the pooled connection (TCP and TLS) with a cheap authenticated request."""
        import anyio

        with anyio.move_on_after(PREWARM_TIMEOUT_S):
            try:
                await self.client.models.list()
            except Exception as exc:
                raise sdk_error(
                    exc, provider=self.name, label=self.server, key_env=self.key_env
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
        reader = ChunkReader(provider=self.name, label=self.server, call_id=self._conversation)
        try:
            async with self.client.chat.completions.with_streaming_response.create(
                **request
            ) as response:
                async for sse in sse_events(_bytes(response, self)):
                    # Read on past [DONE] to the body's end: a response read to its end
                    # gives its connection back to the pool for the next turn.
                    if sse.data.strip() != "[DONE]":
                        for event in reader.events(sse.data):
                            yield event
        except openai.OpenAIError as exc:
            raise sdk_error(
                exc, provider=self.name, label=self.server, key_env=self.key_env
            ) from None
        except EventTooLarge as exc:
            raise ProviderError(f"{self.server} sent {exc}", provider=self.name) from None
        for call in reader.finish():
            yield call

    async def aclose(self) -> None:
        if self._client.sdk is not None:
            await self._client.sdk.close()
            self._client.sdk = None


async def _bytes(response: Any, llm: OpenAILLM) -> AsyncIterator[bytes]:
    """The body; a transport failure while reading it (the SDK lets its HTTP library's
    errors through here) becomes the core's network error, an event past the size bound
    a ProviderError."""
    try:
        async for chunk in response.iter_bytes():
            yield chunk
    except Exception as exc:
        raise network_error(exc, provider=llm.name, label=llm.server) from None


def _instructions_key(messages: Sequence[Message]) -> str | None:
    """A stable cache key per agent: a hash of the system message."""
    system = next((m.content for m in messages if m.role == "system"), "")
    if not system:
        return None
    return "voicekit-" + hashlib.sha256(system.encode()).hexdigest()[:24]
