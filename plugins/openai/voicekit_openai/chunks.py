"""A Chat Completions stream's events (``voicekit.sse``) into voicekit's LLM events.

The SDK makes the request (auth, base URL, status errors); the body is read here rather
than through the SDK's typed chunk objects, which cost about 0.1 ms per token to build,
as much again as everything else a token goes through. Servers that call themselves
OpenAI-compatible differ in small ways, so the reader is lenient where it can be: comment
lines (``: keep-alive``), ``event:`` fields, events whose data spans lines, chunks
without ``choices`` or ``delta``, tool-call deltas without an index. A data line that is
not JSON is logged and skipped; an ``{"error": ...}`` event mid-stream raises, as do
more tool calls or longer arguments than ``voicekit.tool_calls`` allows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from voicekit.errors import ProviderError, ProviderUnavailable
from voicekit.llm import LLMEvent, TextDelta, Usage
from voicekit.tool_calls import ToolCallAssembler, ToolCallLimit

__all__ = ["ChunkReader"]

logger = logging.getLogger(__name__)


class ChunkReader:
    """Turns each chunk's JSON into events; tool calls come whole at the end of a turn."""

    def __init__(self, *, provider: str, label: str, call_id: str | None) -> None:
        self.provider, self.label, self.call_id = provider, label, call_id
        self.tools = ToolCallAssembler()
        self.calls_sent = False
        self.malformed = 0

    def events(self, data: str) -> Iterator[LLMEvent]:
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError):
            self._skip("not JSON", data)
            return
        if not isinstance(chunk, dict):
            self._skip("not a JSON object", data)
            return
        error = chunk.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else error
            raise ProviderUnavailable(
                f"{self.label} failed mid-reply: {message}", provider=self.provider
            )
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            yield _usage(usage)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content = delta.get("content")
                if isinstance(content, str) and content:
                    yield TextDelta(content)
                tool_calls = delta.get("tool_calls")
                for n, tc in enumerate(tool_calls if isinstance(tool_calls, list) else ()):
                    if isinstance(tc, dict):
                        self._add_tool_delta(tc, n)
            if choice.get("finish_reason") == "tool_calls":
                yield from self.finish()

    def finish(self) -> Iterator[LLMEvent]:
        """The assembled tool calls, once (also for a server that never says
        ``finish_reason: "tool_calls"``)."""
        if not self.calls_sent:
            self.calls_sent = True
            yield from self.tools.calls()

    def _add_tool_delta(self, tc: dict[str, Any], position: int) -> None:
        fn = tc.get("function")
        fn = fn if isinstance(fn, dict) else {}
        index = tc.get("index")
        try:
            self.tools.add(
                index if isinstance(index, int) else position,
                _str(tc.get("id")),
                _str(fn.get("name")),
                _str(fn.get("arguments")),
            )
        except ToolCallLimit as exc:
            raise ProviderError(f"{self.label} sent {exc}", provider=self.provider) from None

    def _skip(self, why: str, data: str) -> None:
        self.malformed += 1
        if self.malformed <= 3:
            logger.warning(
                "call=%s: skipped a malformed %s stream event (%s): %.80r",
                self.call_id,
                self.label,
                why,
                data,
            )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _usage(usage: dict[str, Any]) -> Usage:
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else None
    return Usage(
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
        cached_input_tokens=cached,
    )
