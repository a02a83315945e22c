"""The openai, grok and anthropic providers against their loopback emulators, over real
HTTP (their SDKs use httpx2, which respx cannot intercept)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from voicekit_anthropic import AnthropicLLM, AnthropicSettings
from voicekit_grok import GrokLLM, GrokSettings
from voicekit_openai import OpenAILLM, OpenAISettings

from voicekit.errors import ProviderAuthError, ProviderUnavailable, RateLimited
from voicekit.llm import LLM, Message, TextDelta, Tool, ToolCall, Usage
from voicekit.testing.contracts import LLMContract
from voicekit.testing.emulators import (
    AnthropicEmulator,
    OpenAIEmulator,
    ScriptedReply,
    ScriptedToolCall,
)

pytestmark = pytest.mark.anyio

MESSAGES = [Message("system", "You are brief."), Message("user", "When do you open?")]
TOOLS = [
    Tool("opening_hours", "Hours on a day.", {"type": "object", "properties": {}}),
    Tool("weather", "The weather.", {"type": "object", "properties": {}}),
]
TWO_CALLS = ScriptedReply(
    "Let me check that.",
    tool_calls=[
        ScriptedToolCall("opening_hours", '{"day": "monday", "detail": {"slots": [9, 12, 17]}}'),
        ScriptedToolCall("weather", '{"city": "Paris"}'),
    ],
)


def openai_for(em: OpenAIEmulator, **options: Any) -> OpenAILLM:
    return OpenAILLM(
        OpenAISettings.model_validate({"api_key": em.api_key, "base_url": em.url, **options})
    )


def anthropic_for(em: AnthropicEmulator, **options: Any) -> AnthropicLLM:
    return AnthropicLLM(
        AnthropicSettings.model_validate({"api_key": em.api_key, "base_url": em.url, **options})
    )


async def collect(llm: LLM, **kwargs: Any) -> list[Any]:
    return [e async for e in llm.stream(MESSAGES, **kwargs)]


def text_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# -- openai -----------------------------------------------------------------------------------


@pytest.mark.parametrize("interleave", [False, True])
async def test_openai_streams_text_then_assembles_two_tool_calls(interleave: bool) -> None:
    async with OpenAIEmulator(replies=[TWO_CALLS], interleave_tool_calls=interleave) as em:
        llm = openai_for(em)
        events = await collect(llm, tools=TOOLS)
        await llm.aclose()
    assert text_of(events) == "Let me check that."
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [(c.name, c.arguments) for c in calls] == [
        ("opening_hours", '{"day": "monday", "detail": {"slots": [9, 12, 17]}}'),
        ("weather", '{"city": "Paris"}'),
    ]
    assert [c.id for c in calls] == [c.id for c in TWO_CALLS.tool_calls]
    (usage,) = [e for e in events if isinstance(e, Usage)]
    assert usage.input_tokens and usage.output_tokens and usage.cached_input_tokens is not None


async def test_openai_sends_what_the_protocol_asks() -> None:
    async with OpenAIEmulator(replies=["Nine."]) as em:
        llm = openai_for(em, extra_body={"reasoning_effort": "low"}, prompt_cache_key="agent-1")
        await collect(llm, tools=TOOLS, max_tokens=80, temperature=0.4)
        explicit = openai_for(em, token_limit="max_completion_tokens")
        await collect(explicit, max_tokens=80)
        for provider in (llm, explicit):
            await provider.aclose()
    body = em.requests[0]["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "system", "content": "You are brief."},
        {"role": "user", "content": "When do you open?"},
    ]
    assert body["tools"][0] == {
        "type": "function",
        "function": {
            "name": "opening_hours",
            "description": "Hours on a day.",
            "parameters": {"type": "object", "properties": {}},
        },
    }
    assert body["max_tokens"] == 80 and "max_completion_tokens" not in body  # not OpenAI: auto
    assert body["temperature"] == 0.4 and body["reasoning_effort"] == "low"
    assert body["prompt_cache_key"] == "agent-1"
    assert em.requests[1]["body"]["max_completion_tokens"] == 80
    assert em.requests[0]["headers"]["authorization"] == f"Bearer {em.api_key}"
    assert em.requests[0]["headers"].get("x-stainless-retry-count") in (None, "0")


async def test_openai_sends_tool_history_in_its_own_shape() -> None:
    call = ToolCall("call_1", "opening_hours", '{"day": "monday"}')
    history = [
        *MESSAGES,
        Message("assistant", "Let me check.", tool_calls=(call,)),
        Message("tool", "9 to 5", tool_call_id="call_1"),
    ]
    async with OpenAIEmulator(replies=["Nine to five."]) as em:
        llm = openai_for(em)
        events = [e async for e in llm.stream(history, tools=TOOLS)]
        await llm.aclose()
    assert text_of(events) == "Nine to five."
    sent = em.requests[0]["body"]["messages"][2:]
    assert sent == [
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "opening_hours", "arguments": '{"day": "monday"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "9 to 5"},
    ]


async def test_openai_errors_go_through_the_core_mapping() -> None:
    async with OpenAIEmulator(fail_next=[429, 503], retry_after_s=1.5) as em:
        llm = openai_for(em)
        with pytest.raises(RateLimited) as limited:
            await collect(llm)
        assert limited.value.retry_after == 1.5 and limited.value.retryable
        with pytest.raises(ProviderUnavailable):
            await collect(llm)
        wrong = OpenAILLM(OpenAISettings(api_key="sk-wrong-0000000000", base_url=em.url))
        with pytest.raises(ProviderAuthError) as refused:
            await collect(wrong)
        for provider in (llm, wrong):
            await provider.aclose()
    assert "OPENAI_API_KEY" in str(refused.value) and "sk-wrong" not in str(refused.value)
    assert len(em.requests) == 2  # the SDK's own retries are off: the core decides


async def test_prewarm_opens_the_connection_the_first_turn_uses() -> None:
    async with OpenAIEmulator(replies=["Hello."]) as em:
        llm = openai_for(em)
        await llm.prewarm()
        await collect(llm)
        await collect(llm)
        await llm.aclose()
    assert len(em._seen_connections) == 1  # prewarm's connection, reused by both turns


# -- grok --------------------------------------------------------------------------------------


async def test_grok_is_openai_compatible_with_its_key_and_a_conversation_header() -> None:
    async with OpenAIEmulator(replies=["Hi.", "Again."], api_key="xai-test-key") as em:
        grok = GrokLLM(GrokSettings(api_key="xai-test-key", base_url=em.url))
        first = grok.for_call("v3:call-a")
        assert text_of([e async for e in first.stream(MESSAGES)]) == "Hi."
        await collect(grok.for_call("v3:call-b"))
        await grok.aclose()
    assert [r["headers"]["x-grok-conv-id"] for r in em.requests] == ["v3:call-a", "v3:call-b"]
    assert GrokSettings.model_fields["base_url"].default == "https://api.x.ai/v1"
    with pytest.raises(Exception, match="XAI_API_KEY"):
        from voicekit.plugins.registry import validate_settings

        validate_settings(
            GrokSettings, {}, label="grok", prefix="providers.grok", source="t", environ={}
        )


# -- anthropic ---------------------------------------------------------------------------------


async def test_anthropic_streams_text_and_assembles_tool_use() -> None:
    async with AnthropicEmulator(replies=[TWO_CALLS, "Again."]) as em:
        llm = anthropic_for(em)
        events = await collect(llm, tools=TOOLS, max_tokens=200)
        again = await collect(llm, tools=TOOLS, max_tokens=200)  # the prefix is cached now
        await llm.aclose()
    assert text_of(events) == "Let me check that."
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [(c.name, c.arguments) for c in calls] == [
        ("opening_hours", '{"day": "monday", "detail": {"slots": [9, 12, 17]}}'),
        ("weather", '{"city": "Paris"}'),
    ]
    (first,) = [e for e in events if isinstance(e, Usage)]
    (second,) = [e for e in again if isinstance(e, Usage)]
    assert first.cached_input_tokens is None and first.input_tokens  # the cache was written
    assert second.cached_input_tokens and second.input_tokens == first.input_tokens
    body = em.requests[0]["body"]
    assert body["system"] == [
        {"type": "text", "text": "You are brief.", "cache_control": {"type": "ephemeral"}}
    ]
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["max_tokens"] == 200 and body["messages"][0]["role"] == "user"


async def test_anthropic_sends_tool_results_as_blocks() -> None:
    call = ToolCall("toolu_1", "opening_hours", '{"day": "monday"}')
    history = [
        *MESSAGES,
        Message("assistant", "Let me check.", tool_calls=(call,)),
        Message("tool", "9 to 5", tool_call_id="toolu_1"),
    ]
    async with AnthropicEmulator(replies=["Nine to five."]) as em:
        llm = anthropic_for(em, cache_prompt=False)
        assert text_of([e async for e in llm.stream(history)]) == "Nine to five."
        await llm.aclose()
    body = em.requests[0]["body"]
    assert "cache_control" not in body["system"][0]
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "opening_hours",
                    "input": {"day": "monday"},
                },
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "9 to 5"}],
        },
    ]


async def test_anthropic_errors_go_through_the_core_mapping() -> None:
    async with AnthropicEmulator(fail_next=[429], retry_after_s=2) as em:
        llm = anthropic_for(em)
        with pytest.raises(RateLimited) as limited:
            await collect(llm)
        wrong = AnthropicLLM(AnthropicSettings(api_key="sk-ant-wrong-000000", base_url=em.url))
        with pytest.raises(ProviderAuthError) as refused:
            await collect(wrong)
        for provider in (llm, wrong):
            await provider.aclose()
    assert limited.value.retry_after == 2
    assert "ANTHROPIC_API_KEY" in str(refused.value) and "wrong" not in str(refused.value)


# -- the contract, for each ---------------------------------------------------------------------


class TestOpenAIContract(LLMContract):
    @pytest.fixture
    async def llm(self) -> AsyncIterator[LLM]:
        async with OpenAIEmulator(default_reply="Yes, I am here. How can I help?") as em:
            provider = openai_for(em)
            yield provider
            await provider.aclose()


class TestGrokContract(LLMContract):
    @pytest.fixture
    async def llm(self) -> AsyncIterator[LLM]:
        async with OpenAIEmulator(default_reply="Yes, I am here.", api_key="xai-k") as em:
            provider = GrokLLM(GrokSettings(api_key="xai-k", base_url=em.url)).for_call("c")
            yield provider
            await provider.aclose()


class TestAnthropicContract(LLMContract):
    @pytest.fixture
    async def llm(self) -> AsyncIterator[LLM]:
        async with AnthropicEmulator(default_reply="Yes, I am here. How can I help?") as em:
            provider = anthropic_for(em)
            yield provider
            await provider.aclose()


async def test_closing_a_stream_early_cancels_the_request_promptly() -> None:
    """Barge-in: the stream is closed after the first words of a long, slow reply."""
    long = "This is a long answer. " * 40
    async with OpenAIEmulator(replies=[long], tokens_per_second=20) as em:
        llm = openai_for(em)
        stream = llm.stream(MESSAGES)
        async for event in stream:
            if isinstance(event, TextDelta):
                break
        with anyio.fail_after(1):
            await stream.aclose()  # type: ignore[attr-defined]
        await llm.aclose()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_failure_mid_reply_comes_after_the_text_already_streamed(provider: str) -> None:
    """The stream yields what arrived, then raises (retryable in kind, but the session
    retries only before any of the reply reached the TTS)."""
    reply = "We open at nine and close at five on weekdays."
    emulator = OpenAIEmulator if provider == "openai" else AnthropicEmulator
    async with emulator(replies=[reply], fail_mid_stream=[4]) as em:
        llm = openai_for(em) if provider == "openai" else anthropic_for(em)  # type: ignore[arg-type]
        seen: list[Any] = []
        with pytest.raises(ProviderUnavailable, match="mid-reply"):
            async for event in llm.stream(MESSAGES):
                seen.append(event)
        await llm.aclose()
    assert text_of(seen) == "We open at nine"
    assert len(em.requests) == 1


async def test_the_openai_stream_reader_is_lenient_with_compatible_servers() -> None:
    """What OpenAI-compatible servers send besides OpenAI's own form: comments, event
    fields, data over two lines, no tool-call index, junk lines; and an error event."""
    from voicekit_openai.chunks import ChunkReader

    from voicekit.sse import sse_events

    lines = [
        ": keep-alive",
        "event: chunk",
        'data: {"choices": [{"delta": {"content": "Hel"}}]}',
        "",
        'data: {"choices": [{"delta":',
        'data:  {"content": "lo."}}]}',
        "",
        "data: not json at all",
        "",
        "data: [1, 2]",
        "",
        'data: {"choices": [{"delta": {"tool_calls": [{"id": "c1", "function": '
        '{"name": "hours", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]}',
        "",
        'data: {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": "x"}}',
        "",
        "data: [DONE]",
    ]

    async def body() -> AsyncIterator[bytes]:  # in uneven pieces, with CRLF line ends
        raw = "\r\n".join(lines).encode()
        for i in range(0, len(raw), 7):
            yield raw[i : i + 7]

    reader = ChunkReader(provider="openai", label="OpenAI", call_id="c")
    events = [
        e
        async for sse in sse_events(body())
        if sse.data != "[DONE]"
        for e in reader.events(sse.data)
    ]
    assert text_of(events) == "Hello."
    assert [e for e in events if isinstance(e, ToolCall)] == [ToolCall("c1", "hours", "{}")]
    assert Usage(input_tokens=9) in events and reader.malformed == 2
    with pytest.raises(ProviderUnavailable, match="mid-reply: overloaded"):
        list(reader.events('{"error": {"message": "overloaded"}}'))


async def test_a_self_hosted_server_needs_no_key_but_openai_does() -> None:
    from voicekit.plugins.registry import validate_settings

    async with OpenAIEmulator(replies=["Hi."], api_key="no-key") as em:
        settings = validate_settings(
            OpenAISettings,
            {"base_url": em.url},
            label="openai",
            prefix="providers.openai",
            source="t",
            environ={},
        )
        llm = OpenAILLM(settings)
        assert text_of(await collect(llm)) == "Hi."
        await llm.aclose()
    with pytest.raises(Exception, match="OPENAI_API_KEY"):
        validate_settings(
            OpenAISettings, {}, label="openai", prefix="providers.openai", source="t", environ={}
        )
    from_env = validate_settings(
        OpenAISettings,
        {},
        label="openai",
        prefix="providers.openai",
        source="t",
        environ={"OPENAI_API_KEY": "sk-env"},
    )
    assert from_env.api_key is not None and from_env.api_key.get_secret_value() == "sk-env"


async def test_the_emulators_answer_without_streaming_too() -> None:
    """Some clients (and health checks) ask for the whole reply at once."""
    import anthropic
    import openai

    async with OpenAIEmulator(replies=[TWO_CALLS]) as em:
        client = openai.AsyncOpenAI(api_key=em.api_key, base_url=em.url, max_retries=0)
        completion = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        await client.close()
    message = completion.choices[0].message
    assert message.content == "Let me check that." and completion.usage is not None
    assert [c.function.name for c in message.tool_calls or []] == ["opening_hours", "weather"]
    async with AnthropicEmulator(replies=[TWO_CALLS]) as em2:
        aclient = anthropic.AsyncAnthropic(api_key=em2.api_key, base_url=em2.url, max_retries=0)
        reply = await aclient.messages.create(
            model="m", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
        await aclient.close()
    assert [b.type for b in reply.content] == ["text", "tool_use", "tool_use"]
    assert reply.stop_reason == "tool_use"
