"""What the LLM emulators answer, and how fast: shared by the OpenAI and Anthropic ones.

A script is a list of replies, one per request in order (then ``default_reply``). A reply
is text, or text followed by tool calls::

    hours = ScriptedToolCall("opening_hours", '{"day": "monday"}')
    OpenAIEmulator(replies=[
        ScriptedReply("Let me check.", tool_calls=[hours]),
        "We open at nine on Mondays.",
    ])

Text streams as LLM-like tokens (``voicekit.testing.tokenize``) after ``first_token_ms``,
at ``tokens_per_second``; tool-call arguments stream in fragments of
``argument_chunk_chars``. Failures: ``fail_next`` answers the next requests with HTTP
errors (a 429 with ``retry_after_s``), ``fail_mid_stream`` breaks the next streams with
the service's error event after some tokens, ``connect_delay_ms`` slows each new
connection's first request. ``requests`` logs each request's body, headers and time
(``at``, on the event loop's clock).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from voicekit.testing.fake_llm import tokenize

__all__ = ["LLMScript", "ScriptedReply", "ScriptedToolCall", "StreamClock"]


@dataclass(frozen=True)
class ScriptedToolCall:
    name: str
    arguments: str = "{}"  # JSON text, streamed in fragments
    id: str = field(default_factory=lambda: f"call_{secrets.token_hex(6)}")


@dataclass(frozen=True)
class ScriptedReply:
    text: str = ""
    tool_calls: Sequence[ScriptedToolCall] = ()


@dataclass
class LLMScript:
    """Replies in order, then ``default_reply``; what each request was given is logged."""

    replies: list[str | ScriptedReply] = field(default_factory=list)
    default_reply: str = "I see. Tell me more."
    first_token_ms: float = 50.0
    tokens_per_second: float = 200.0
    argument_chunk_chars: int = 8
    connect_delay_ms: float = 0.0  # extra wait on each new connection's first request
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # HTTP statuses for the next requests
    retry_after_s: float | None = None  # sent with a 429
    fail_mid_stream: list[int] = field(default_factory=list)  # the next streams: an error
    # event after this many text tokens (the reply had begun: too late to retry)
    _next: int = 0
    _seen_connections: set[Any] = field(default_factory=set)

    def next_reply(self) -> ScriptedReply:
        item: str | ScriptedReply = (
            self.replies[self._next] if self._next < len(self.replies) else self.default_reply
        )
        self._next += 1
        return ScriptedReply(item) if isinstance(item, str) else item

    async def connection_delay(self, client: Any) -> None:
        """Wait ``connect_delay_ms`` on the first request of a connection (as a TLS
        handshake to a real service costs), so prewarming can be measured."""
        if client is not None and client not in self._seen_connections:
            self._seen_connections.add(client)
            if self.connect_delay_ms:
                await anyio.sleep(self.connect_delay_ms / 1000)

    def tokens(self, text: str) -> list[str]:
        return tokenize(text)

    def next_failure(self) -> tuple[int, dict[str, str] | None] | None:
        """The HTTP status (and headers) to answer this request with, from
        ``fail_next``; None: answer it."""
        if not self.fail_next:
            return None
        status = self.fail_next.pop(0)
        if status == 429 and self.retry_after_s is not None:
            return status, {"retry-after": f"{self.retry_after_s:g}"}
        return status, None

    def stream_failure(self) -> int | None:
        """For a new stream: after how many text tokens it fails (None: it does not)."""
        return self.fail_mid_stream.pop(0) if self.fail_mid_stream else None

    def reply_failed(self) -> None:
        """The reply just streamed broke off: the next request gets it again, as a
        retried request to a real model would get (much) the same answer."""
        self._next -= 1

    def log_request(self, body: Any, headers: Any) -> None:
        self.requests.append({"body": body, "headers": dict(headers), "at": anyio.current_time()})

    def argument_pieces(self, arguments: str) -> list[str]:
        size = max(1, self.argument_chunk_chars)
        return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


class StreamClock:
    """Paces a stream: the first item after ``first_token_ms``, then one per token gap."""

    def __init__(self, script: LLMScript) -> None:
        self._start = anyio.current_time() + script.first_token_ms / 1000
        self._gap = 1.0 / script.tokens_per_second
        self._n = 0

    async def tick(self) -> None:
        await anyio.sleep(max(0.0, self._start + self._n * self._gap - anyio.current_time()))
        self._n += 1

    async def paced(self, items: Sequence[Any]) -> AsyncIterator[Any]:
        for item in items:
            await self.tick()
            yield item
