"""The ``anthropic`` LLM provider: Messages streaming through the official SDK.

One ``AsyncAnthropic`` client per provider, shared by every call; its own retries are
off, so the core's policy decides. The system message goes in ``system`` (marked for the
prompt cache with ``cache_control``, as the tools are, unless ``cache_prompt`` is off);
text deltas stream as they arrive; a ``tool_use`` block's ``input_json_delta`` fragments
are assembled into one call; usage comes from ``message_start`` (input, cache reads) and
``message_delta`` (output).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, ClassVar

import anyio

from voicekit.errors import ProviderError, ProviderTimeoutError, ProviderUnavailable
from voicekit.llm import LLM, LLMEvent, Message, TextDelta, Tool, ToolCall, Usage
from voicekit.provider import ProviderSettings
from voicekit.provider_errors import MAX_DETAIL_CHARS, network_error, retry_after_s, status_error
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
            try:
                arguments = json.loads(call.arguments or "{}")
            except ValueError:
                arguments = {}
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
            f"Anthropic refused the request (HTTP {exc.status_code})",
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

        try:
            response = await self.client.messages.create(
                **self.request(messages, tools, max_tokens, temperature)
            )
        except anthropic.AnthropicError as exc:
            raise sdk_error(exc, provider=self.name) from None
        usage_in: Any = None
        tool_blocks: dict[int, tuple[str, str, list[str]]] = {}  # index -> id, name, json
        async with contextlib.aclosing(_events(response)) as events:
            try:
                async for event in events:
                    kind = event.type
                    if kind == "message_start":
                        usage_in = event.message.usage
                    elif kind == "content_block_start":
                        block = event.content_block
                        if block.type == "tool_use":
                            tool_blocks[event.index] = (block.id, block.name, [])
                    elif kind == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta" and delta.text:
                            yield TextDelta(delta.text)
                        elif delta.type == "input_json_delta" and event.index in tool_blocks:
                            tool_blocks[event.index][2].append(delta.partial_json)
                    elif kind == "content_block_stop" and event.index in tool_blocks:
                        call_id, name, parts = tool_blocks.pop(event.index)
                        yield ToolCall(call_id, name, "".join(parts) or "{}")
                    elif kind == "message_delta":
                        yield _usage(usage_in, event.usage)
            except anthropic.AnthropicError as exc:
                raise sdk_error(exc, provider=self.name) from None

    async def aclose(self) -> None:
        if self._sdk is not None:
            await self._sdk.close()
            self._sdk = None


def _usage(start: Any, delta: Any) -> Usage:
    cached = getattr(start, "cache_read_input_tokens", None) if start is not None else None
    uncached = getattr(start, "input_tokens", None) if start is not None else None
    created = getattr(start, "cache_creation_input_tokens", None) if start is not None else None
    total_in = None
    if uncached is not None:
        total_in = uncached + (cached or 0) + (created or 0)
    return Usage(
        input_tokens=total_in,
        output_tokens=getattr(delta, "output_tokens", None),
        cached_input_tokens=cached,
    )


async def _events(response: Any) -> AsyncGenerator[Any, None]:
    """The SDK's stream as an async generator that closes its response when closed."""
    try:
        async for event in response:
            yield event
    finally:
        await response.close()
