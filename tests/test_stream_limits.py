"""What a broken or hostile LLM server cannot make a process do: hold an endless line,
an endless tool call, thousands of calls, or poison the conversation with bad JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from voicekit_openai import OpenAILLM, OpenAISettings

from voicekit.errors import ProviderError
from voicekit.llm import Message
from voicekit.sse import EventTooLarge, sse_events
from voicekit.testing.emulators import OpenAIEmulator, ScriptedReply, ScriptedToolCall
from voicekit.tool_calls import (
    MAX_ARGUMENT_CHARS,
    MAX_TOOL_CALLS,
    ToolCallAssembler,
    ToolCallLimit,
    parse_tool_arguments,
)

pytestmark = pytest.mark.anyio


async def endless(piece: bytes, times: int) -> AsyncIterator[bytes]:
    for _ in range(times):
        yield piece


async def test_an_endless_line_is_refused_once_it_passes_the_bound() -> None:
    read = 0

    async def counted() -> AsyncIterator[bytes]:
        nonlocal read
        async for chunk in endless(b"x" * 65536, 10_000):  # 655 MB, never a newline
            read += 1
            yield chunk

    with pytest.raises(EventTooLarge):
        async for _ in sse_events(counted(), max_event_bytes=1 << 20):
            pass
    assert read <= 17  # stopped just past 1 MiB


async def test_an_event_of_endless_data_lines_is_refused() -> None:
    with pytest.raises(EventTooLarge):
        async for _ in sse_events(endless(b"data: " + b"y" * 1000 + b"\n", 5000)):
            pass


async def test_events_split_anywhere_and_any_line_ending() -> None:
    raw = b'event: a\r\ndata: {"x": 1}\r\n\r\n: comment\ndata: two\rdata: lines\r\r'
    for size in (1, 2, 3, 5, len(raw)):
        pieces = [raw[i : i + size] for i in range(0, len(raw), size)]

        async def body(pieces: list[bytes] = pieces) -> AsyncIterator[bytes]:
            for p in pieces:
                yield p

        events = [e async for e in sse_events(body())]
        assert [(e.event, e.data) for e in events] == [("a", '{"x": 1}'), (None, "two\nlines")]


def test_tool_calls_are_bounded_in_number_and_size() -> None:
    many = ToolCallAssembler()
    for i in range(MAX_TOOL_CALLS):
        many.add(i, f"c{i}", "t", "{}")
    with pytest.raises(ToolCallLimit, match="tool calls"):
        many.add(MAX_TOOL_CALLS, "x", "t", "{}")
    long = ToolCallAssembler()
    long.add(0, "c", "t", "[" * MAX_ARGUMENT_CHARS)
    with pytest.raises(ToolCallLimit, match="arguments"):
        long.add(0, None, None, "[")


def test_arguments_that_are_not_an_object_become_empty() -> None:
    assert parse_tool_arguments('{"a": 1}') == {"a": 1}
    for bad in ("[" * 100_000, "[1]", "nope", "", "null"):
        assert parse_tool_arguments(bad) == {}


async def test_a_response_with_too_many_tool_calls_fails_as_a_provider_error() -> None:
    calls = [ScriptedToolCall("t", "{}") for _ in range(MAX_TOOL_CALLS + 1)]
    async with OpenAIEmulator(replies=[ScriptedReply("", calls)]) as em:
        llm = OpenAILLM(OpenAISettings(api_key=em.api_key, base_url=em.url))
        with pytest.raises(ProviderError, match="more than 16 tool calls"):
            async for _ in llm.stream([Message("user", "hi")]):
                pass
        await llm.aclose()


def test_a_bad_tool_call_in_the_history_does_not_break_later_anthropic_requests() -> None:
    from voicekit_anthropic.llm import claude_messages

    from voicekit.llm import ToolCall

    history = [
        Message("user", "hi"),
        Message("assistant", "", tool_calls=(ToolCall("t1", "book", "[" * 100_000),)),
        Message("tool", "Error: bad arguments", tool_call_id="t1"),
    ]
    _, messages = claude_messages(history)
    assert messages[1]["content"][0]["input"] == {}
