"""The ``anthropic`` LLM provider: Messages streaming through the official SDK.

One ``AsyncAnthropic`` client per provider, shared by every call; its own retries are
off, so the core's policy decides. The system message goes in ``system`` (marked for the
prompt cache with ``cache_control``, as the tools are, unless ``cache_prompt`` is off);
the stream is read by :mod:`voicekit_anthropic.events`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import anyio

from voicekit.errors import ProviderError, ProviderTimeoutError, ProviderUnavailable
from voicekit.llm import LLM, LLMEvent, Message, Tool
from voicekit.provider import ProviderSettings
from voicekit.provider_errors import MAX_DETAIL_CHARS, network_error, retry_after_s, status_error
from voicekit.sse import EventTooLarge, sse_events
from voicekit.tls import HTTP1_ALPN, client_tls
from voicekit.tool_calls import parse_tool_arguments
from voicekit_anthropic.events import PROVIDER, EventReader
from voicekit_anthropic.settings import AnthropicSettings

__all__ = ["AnthropicLLM", "claude_messages"]

logger = logging.getLogger(__name__)
PREWARM_TIMEOUT_S = 5.0
EPHEMERAL = {"type": "ephemeral"}


def claude_messages(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    """The system text, and the conversation in Messages form: tool calls as ``tool_use``
    blocks of the assistant, results as ``tool_result`` blocks of the next user message."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    out: list[dict[str, Any]] = []

    def append(role: str, block: dict[str, Any]) -> None:
        if out and out[-1]["role"] == role:
            out[-1]["content"].append(block)
        else:
            out.append({"role": role, "content": [block]})

    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            append(
                "user",
                {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content},
            )
            continue
        if m.content:
            append(m.role, {"type": "text", "text": m.content})
        for call in m.tool_calls:
            arguments = parse_tool_arguments(call.arguments)
            append(
                "assistant",
                {"type": "tool_use", "id": call.id, "name": call.name, "input": arguments},
            )
    return system, out


def sdk_error(exc: Exception, *, provider: str) -> ProviderError:
    """An ``anthropic`` SDK exception through the core's one error mapping."""
    import anthropic

    if isinstance(exc, anthropic.APIStatusError) and exc.status_code < 400:
        # An ``error`` event inside a stream the server had answered 200.
        detail = str(getattr(exc, "message", "") or exc)[:MAX_DETAIL_CHARS]
        return ProviderUnavailable(f"Anthropic failed mid-reply: {detail}", provider=provider)
    if isinstance(exc, anthropic.APIStatusError):
        return status_error(
            exc.status_code,
            "Anthropic refused the request",
            provider=provider,
            key_env="ANTHROPIC_API_KEY",
            retry_after=retry_after_s(exc.response.headers),
            detail=str(getattr(exc, "message", "") or exc),
        )
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderTimeoutError("Anthropic did not answer in time", provider=provider)
    if isinstance(exc, anthropic.APIConnectionError):
        return network_error(exc.__cause__ or exc, provider=provider, label="Anthropic")
    return ProviderUnavailable(f"Anthropic failed mid-reply: {exc}", provider=provider)


class AnthropicLLM(LLM[AnthropicSettings]):
    name: ClassVar[str] = "anthropic"
    Settings: ClassVar[type[ProviderSettings]] = AnthropicSettings

    def __init__(self, settings: AnthropicSettings | None = None) -> None:
        super().__init__(settings)
        self._sdk: Any = None
        self._call_id: str | None = None
        # The SDK takes most of a second to import: pay that when the server starts,
        # not in the first call's first turn.
        import anthropic  # noqa: F401

    @property
    def client(self) -> Any:
        if self._sdk is None:
            import anthropic

            s = self.settings
            self._sdk = anthropic.AsyncAnthropic(
                api_key=s.api_key.get_secret_value(),
                base_url=s.base_url,
                timeout=s.timeout,
                max_retries=0,  # the core's retry policy decides
                # The process's shared TLS context: the SDK would build its own, a
                # whole CA bundle (15-20 ms of CPU), for every client.
                http_client=anthropic.DefaultAsyncHttpxClient(verify=client_tls(HTTP1_ALPN)),
            )
        return self._sdk

    async def prewarm(self) -> None:
        """Open the pooled connection (TCP and TLS) with a cheap authenticated request."""
        with anyio.move_on_after(PREWARM_TIMEOUT_S):
            try:
                await self.client.models.list()
            except Exception as exc:
                raise sdk_error(exc, provider=self.name) from None

    def request(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool] | None,
        max_tokens: int | None,
        temperature: float | None,
    ) -> dict[str, Any]:
        """The ``messages.create`` arguments for one reply."""
        s = self.settings
        system, conversation = claude_messages(messages)
        request: dict[str, Any] = {
            "model": s.model,
            "messages": conversation,
            "max_tokens": max_tokens or s.max_tokens,
            "stream": True,
        }
        if system:
            block: dict[str, Any] = {"type": "text", "text": system}
            if s.cache_prompt:
                block["cache_control"] = EPHEMERAL
            request["system"] = [block]
        if tools:
            specs: list[dict[str, Any]] = [
                {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
                for t in tools
            ]
            if s.cache_prompt:
                specs[-1]["cache_control"] = EPHEMERAL  # caches every tool up to this one
            request["tools"] = specs
        if temperature is not None:
            # Not a named argument of the SDK's create() any more; the API still reads it.
            request["extra_body"] = {"temperature": min(temperature, 1.0)}  # range 0..1
        return request

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Tool] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> AsyncIterator[LLMEvent]:
        import anthropic

        reader = EventReader(self._call_id)
        request = self.request(messages, tools, max_tokens, temperature)
        try:
            async with self.client.messages.with_streaming_response.create(**request) as response:
                async for sse in sse_events(_bytes(response)):
                    for event in reader.events(sse.data):
                        yield event
        except anthropic.AnthropicError as exc:
            raise sdk_error(exc, provider=self.name) from None
        except EventTooLarge as exc:
            raise ProviderError(f"Anthropic sent {exc}", provider=self.name) from None
        for call in reader.calls():
            yield call

    def for_call(self, call_id: str) -> AnthropicLLM:
        view = copy.copy(self)  # shares the client (one pool for the process)
        view._call_id = call_id
        return view

    async def aclose(self) -> None:
        if self._sdk is not None:
            await self._sdk.close()
            self._sdk = None


async def _bytes(response: Any) -> AsyncIterator[bytes]:
    """The body; a transport failure while reading it (the SDK lets its HTTP library's
    errors through here) becomes the core's network error."""
    try:
        async for chunk in response.iter_bytes():
            yield chunk
    except Exception as exc:
        raise network_error(exc, provider=PROVIDER, label="Anthropic") from None
