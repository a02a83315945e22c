"""A Messages stream's events (``voicekit.sse``) into voicekit's LLM events.

The SDK makes the request; the body is read here, as plain JSON, rather than through the
SDK's typed event objects (cheaper per token, and bounded: ``voicekit.sse`` caps each
event, ``voicekit.tool_calls`` the tool calls). Text deltas stream as they arrive; a
``tool_use`` block's ``input_json_delta`` fragments are assembled into one call, and the
calls come once the message ends; usage comes from ``message_start`` (input, cache reads
and writes) and ``message_delta`` (output). An ``error`` event raises; a malformed event
is logged and skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from voicekit.errors import ProviderError, ProviderUnavailable
from voicekit.llm import LLMEvent, TextDelta, Usage
from voicekit.tool_calls import ToolCallAssembler, ToolCallLimit

__all__ = ["EventReader"]

logger = logging.getLogger(__name__)
PROVIDER = "anthropic"


class EventReader:
    def __init__(self, call_id: str | None) -> None:
        self.call_id = call_id
        self.tools = ToolCallAssembler()
        self._tool_blocks: set[int] = set()
        self._usage_in: dict[str, Any] = {}
        self.malformed = 0

    def events(self, data: str) -> Iterator[LLMEvent]:
        try:
            event = json.loads(data)
        except (ValueError, RecursionError):
            event = None
        if not isinstance(event, dict):
            self._skip(data)
            return
        kind = event.get("type")
        try:
            if kind == "content_block_delta":
                yield from self._delta(event)
            elif kind == "content_block_start":
                self._block_start(event)
            elif kind == "message_start":
                message = event.get("message")
                usage = message.get("usage") if isinstance(message, dict) else None
                self._usage_in = usage if isinstance(usage, dict) else {}
            elif kind == "message_delta":
                usage = event.get("usage")
                yield _usage(self._usage_in, usage if isinstance(usage, dict) else {})
            elif kind == "error":
                error = event.get("error")
                message = error.get("message") if isinstance(error, dict) else error
                raise ProviderUnavailable(
                    f"Anthropic failed mid-reply: {message}", provider=PROVIDER
                )
        except ToolCallLimit as exc:
            raise ProviderError(f"Anthropic sent {exc}", provider=PROVIDER) from None

    def calls(self) -> Iterator[LLMEvent]:
        yield from self.tools.calls()

    def _block_start(self, event: dict[str, Any]) -> None:
        block, index = event.get("content_block"), event.get("index")
        if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(index, int):
            self._tool_blocks.add(index)
            self.tools.add(index, _str(block.get("id")), _str(block.get("name")), None)

    def _delta(self, event: dict[str, Any]) -> Iterator[LLMEvent]:
        delta, index = event.get("delta"), event.get("index")
        if not isinstance(delta, dict):
            return
        if delta.get("type") == "text_delta":
            text = delta.get("text")
            if isinstance(text, str) and text:
                yield TextDelta(text)
        elif delta.get("type") == "input_json_delta" and index in self._tool_blocks:
            assert isinstance(index, int)
            self.tools.add(index, None, None, _str(delta.get("partial_json")))

    def _skip(self, data: str) -> None:
        self.malformed += 1
        if self.malformed <= 3:
            logger.warning(
                "call=%s: skipped a malformed Anthropic stream event: %.80r", self.call_id, data
            )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _usage(start: dict[str, Any], delta: dict[str, Any]) -> Usage:
    uncached = _int(start.get("input_tokens"))
    cached = _int(start.get("cache_read_input_tokens"))
    created = _int(start.get("cache_creation_input_tokens"))
    total_in = None if uncached is None else uncached + (cached or 0) + (created or 0)
    return Usage(
        input_tokens=total_in,
        output_tokens=_int(delta.get("output_tokens")),
        cached_input_tokens=cached,
    )
