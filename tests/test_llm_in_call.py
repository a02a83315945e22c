"""A call whose LLM is the real openai provider, over HTTP to its emulator (real clock):
the session's retry rule (only before any of the reply reached the TTS), usage and
tools reaching the call record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from voicekit_openai import OpenAILLM, OpenAISettings

from voicekit.audio import ULAW_8K
from voicekit.config.sections import AgentSettings, TurnSettings
from voicekit.records import CallRecord
from voicekit.session import CallSession
from voicekit.testing import FakeMediaStream, FakeSTT, FakeTTS, silence, voice
from voicekit.testing.emulators import OpenAIEmulator, ScriptedReply, ScriptedToolCall

pytestmark = pytest.mark.anyio


async def call_with(
    em: OpenAIEmulator, utterances: list[str], until: Callable[[CallRecord], bool], **agent: Any
) -> tuple[CallSession, CallRecord]:
    """One call: the caller says each utterance in turn, waiting for ``until`` after the
    last; the LLM is the openai provider pointed at ``em``."""
    media = FakeMediaStream(inbound_format=ULAW_8K)
    llm = OpenAILLM(OpenAISettings(api_key=em.api_key, base_url=em.url))
    session = CallSession(
        media,
        stt=FakeSTT.scripted(utterances, endpoint_ms=300),
        llm=llm,
        tts=FakeTTS.with_options(ms_per_char=10, first_audio_ms=30),
        agent=AgentSettings(first_speaker="caller", **agent),
        turn=TurnSettings(idle_timeout_s=60),
    )

    ended = anyio.Event()

    async def caller() -> None:
        for n in range(len(utterances)):
            await media.say(voice(400, ULAW_8K) + silence(400, ULAW_8K))
            with anyio.fail_after(15):
                while not ended.is_set() and not (
                    until(session.record) if n == len(utterances) - 1 else session.record.turns
                ):
                    await media.say(silence(20, ULAW_8K))
        media.hang_up()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
            record = await session.run()
            ended.set()
    finally:
        await llm.aclose()
    return session, record


async def test_a_rate_limit_before_the_first_token_is_waited_out_and_retried() -> None:
    async with OpenAIEmulator(
        replies=["We open at nine."], fail_next=[429], retry_after_s=0.3
    ) as em:
        _, record = await call_with(em, ["when do you open"], lambda r: bool(r.turns))
    (turn,) = record.turns
    assert turn.heard_text == "We open at nine." and turn.status == "played"
    first, second = em.requests
    assert second["at"] - first["at"] >= 0.3  # retry-after honoured
    assert turn.input_tokens and turn.output_tokens and turn.cached_input_tokens is not None
    assert turn.llm_request is not None and turn.llm_first_token is not None
    assert turn.llm_request < turn.llm_first_token  # TTFT from the first request, retry in
    assert record.input_tokens == turn.input_tokens


async def test_a_failure_after_speech_began_is_not_retried_and_ends_with_the_apology() -> None:
    reply = "We open at nine on weekdays. On weekends we open at ten and close at noon."
    async with OpenAIEmulator(replies=[reply], fail_mid_stream=[10]) as em:
        _, record = await call_with(
            em,
            ["when do you open"],
            lambda r: len(r.turns) >= 2,
            apology="Sorry, something went wrong.",
        )
    failed, apology = record.turns
    assert len(em.requests) == 1  # words reached the TTS: a retry would repeat them
    assert failed.heard_text == "We open at nine on weekdays."
    assert failed.error is not None and "mid-reply" in failed.error
    assert apology.heard_text == "Sorry, something went wrong."


async def test_a_failure_before_any_piece_reached_the_tts_is_retried() -> None:
    """Tokens arrived, but not a whole piece: nothing was spoken, so the retry is safe."""
    async with OpenAIEmulator(replies=["We open at nine on weekdays."], fail_mid_stream=[2]) as em:
        _, record = await call_with(em, ["when do you open"], lambda r: bool(r.turns))
    assert len(em.requests) == 2
    assert [t.heard_text for t in record.turns] == ["We open at nine on weekdays."]


async def test_the_model_ends_the_call_with_the_builtin_tool() -> None:
    bye = ScriptedReply("Thanks for calling, goodbye!", tool_calls=[ScriptedToolCall("end_call")])
    async with OpenAIEmulator(replies=[bye, ""]) as em:  # nothing more after the tool
        _, record = await call_with(
            em, ["that is all thanks"], lambda r: False, builtin_tools=["end_call"]
        )
    assert record.end_reason == "agent_hangup"
    assert record.turns[0].heard_text == "Thanks for calling, goodbye!"
    assert [t.name for t in record.turns[0].tools] == ["end_call"]
    offered = em.requests[0]["body"]["tools"]
    assert [t["function"]["name"] for t in offered] == ["end_call"]
    assert em.requests[1]["body"]["messages"][-1]["role"] == "tool"
