"""CallSession under failure: apologies, broken media, hang-up mid-reply, no leaks; and
format negotiation (zero transcoding when the providers speak the call's codec)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import trio

from tests.session_helpers import (  # noqa: F401
    Call,
    RecordingHooks,
    anyio_backend,
    make_call,
    run_call,
    until,
)
from voicekit.audio import ALAW_8K, PCM_16K, ULAW_8K
from voicekit.hookspecs import hookimpl
from voicekit.plugins import PluginManager
from voicekit.plugins.observers import Observers
from voicekit.testing import FakeTTS, voice

pytestmark = pytest.mark.anyio


async def test_llm_failure_gives_an_apology_and_the_call_goes_on() -> None:
    call = make_call(
        utterances=["hello", "are you ok"],
        replies=["This will fail midway.", "Yes, all good now."],
        llm={"fail_on_reply": 0, "fail_after_tokens": 2},
        agent={"apology": "Sorry, say that again?"},
    )

    async def caller(c: Call) -> None:
        await c.say(500, then_silence_ms=400)
        await until(lambda: len(c.session.record.turns) >= 2)
        await c.say(500, then_silence_ms=400)
        await until(lambda: len(c.session.record.turns) >= 3)
        c.media.hang_up()

    record = await run_call(call, caller)
    failed, apology, answer = record.turns
    assert failed.error is not None and "scripted failure" in failed.error
    assert apology.agent_text == "Sorry, say that again?"
    assert answer.agent_text == "Yes, all good now." and answer.error is None
    assert record.end_reason == "caller_hangup"


async def test_tts_failure_gives_an_apology() -> None:
    call = make_call(
        utterances=["hello"],
        replies=["Hi there."],
        tts={"fail_on_utterance": 0},
        agent={"apology": "Sorry about that."},
    )

    async def caller(c: Call) -> None:
        await c.say(500, then_silence_ms=400)
        await until(lambda: len(c.session.record.turns) >= 2)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert "scripted TTS failure" in (record.turns[0].error or "")
    assert record.turns[1].heard_text == "Sorry about that."


async def test_a_broken_media_stream_ends_the_call_cleanly() -> None:
    call = make_call(utterances=["hello"], replies=["Hi there, this is a long answer. " * 5])

    async def caller(c: Call) -> None:
        await c.say(500, then_silence_ms=400)
        await until(lambda: c.media.sent_frames)
        c.media.fail(ConnectionResetError("socket closed"))

    record = await run_call(call, caller)
    assert record.end_reason == "media_error"
    assert record.ended_at is not None and len(record.turns) == 1
    assert call.stt.streams[0].closed and call.tts.sessions[0].closed


async def test_hang_up_mid_reply_ends_every_task_and_closes_every_stream() -> None:
    tasks_before = trio.lowlevel.current_statistics().tasks_living
    call = make_call(
        utterances=["tell me a story"],
        replies=["Once upon a time there was a very long story. " * 6],
        llm={"tokens_per_second": 5},
    )

    async def caller(c: Call) -> None:
        await c.say(500, then_silence_ms=400)
        await until(lambda: len(c.media.sent_frames) > 30)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert trio.lowlevel.current_statistics().tasks_living == tasks_before
    assert record.end_reason == "caller_hangup"
    assert call.llm.cancelled == 1  # the LLM stream was closed mid-reply
    assert all(u.cancelled or u.ended for u in call.tts.all_utterances)
    assert call.tts.sessions[0].closed and call.stt.streams[0].closed
    turn = record.turns[0]
    assert turn.heard_text and turn.agent_text.startswith(turn.heard_text)
    assert [name for name, _ in call.hooks][-1] == "call_ended"


async def test_a_bad_observer_hook_does_not_break_the_call_or_the_other_plugins(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two real pluggy plugins: the later-registered one (called first) raises in every
    lifecycle hook; the earlier one still sees every hook, and the call goes on."""
    call = make_call(utterances=["hi"], replies=["Hello."])
    seen: list[tuple[str, Any]] = []

    class Broken:
        @hookimpl
        def call_started(self, call: object) -> None:
            raise RuntimeError("observer bug")

        @hookimpl
        def turn_completed(self, call: object, turn: object) -> None:
            raise RuntimeError("observer bug")

        @hookimpl
        def call_ended(self, call: object, record: object) -> None:
            raise RuntimeError("observer bug")

    manager = PluginManager()
    manager.register(RecordingHooks(seen), name="crm-export")
    manager.register(Broken(), name="broken-analytics")
    call.session._hooks = Observers(manager)

    async def caller(c: Call) -> None:
        await c.say(500, then_silence_ms=400)
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert record.turns[0].heard_text == "Hello."
    assert [name for name, _ in seen] == ["call_started", "turn_completed", "call_ended"]
    failures = [r for r in caplog.records if "raised in its" in r.getMessage()]
    assert len(failures) == 3
    assert all("plugin broken-analytics" in r.getMessage() for r in failures)
    assert all(f"call={call.session.call_id}" in r.getMessage() for r in failures)


async def test_pcmu_call_runs_with_zero_transcoding() -> None:
    call = make_call(utterances=["hello"], replies=["Hello, how are you?"])
    fed = voice(600, ULAW_8K) + ULAW_8K.silence(400)

    async def caller(c: Call) -> None:
        await c.media.say(fed)
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    await run_call(call, caller)
    assert call.session.transcoding == {"inbound": False, "outbound": False}
    assert call.session.stt_format == ULAW_8K and call.session.tts_format == ULAW_8K
    assert call.stt.streams[0].bytes_received == len(fed)  # the caller's bytes, untouched
    # The agent's audio is the TTS's bytes, framed but unchanged (plus silence padding).
    sent = b"".join(frame for _, frame in call.media.sent_frames)
    from voicekit.testing import synthesize

    tts_audio = synthesize(call.tts.all_utterances[0].text, ULAW_8K, 60.0)
    assert sent[: len(tts_audio)] == tts_audio
    assert set(sent[len(tts_audio) :]) <= {0xFF}


async def test_one_in_process_conversion_when_formats_differ() -> None:
    call = make_call(utterances=["hello"], replies=["Hello there."], call_format=ALAW_8K)
    call.session.tts = FakeTTS.with_options(formats=(PCM_16K,))
    from voicekit.session import CallSession

    session = CallSession(
        call.media,
        stt=call.stt,
        llm=call.llm,
        tts=call.session.tts,
        agent=call.session.agent,
        turn=call.session.turn,
    )
    call.session = session

    async def caller(c: Call) -> None:
        await c.say(600, then_silence_ms=400)
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert session.stt_format == ULAW_8K  # same rate: no resampling on the way in
    assert session.tts_format == PCM_16K  # the only format the TTS offers
    assert session.transcoding == {"inbound": True, "outbound": True}
    # Whole 20 ms frames of A-law, up to three a message.
    assert all(len(frame) in (160, 320, 480) for _, frame in call.media.sent_frames)
    assert record.turns[0].heard_text == "Hello there."


async def test_retryable_llm_error_before_any_speech_is_retried() -> None:
    call = make_call(
        utterances=["hello"],
        replies=["never streamed", "Recovered answer."],
        llm={"fail_on_reply": 0, "fail_after_tokens": 1, "fail_retryable": True},
    )

    async def caller(c: Call) -> None:
        await c.say(500, then_silence_ms=400)
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert len(call.llm.requests) == 2
    assert record.turns[0].heard_text == "Recovered answer." and record.turns[0].error is None


async def test_no_retry_once_part_of_the_reply_went_to_the_tts() -> None:
    call = make_call(
        utterances=["hello"],
        replies=["First sentence is spoken. Then it breaks", "never used"],
        llm={"fail_on_reply": 0, "fail_after_tokens": 8, "fail_retryable": True},
        agent={"apology": "Sorry."},
    )

    async def caller(c: Call) -> None:
        await c.say(500, then_silence_ms=400)
        await until(lambda: len(c.session.record.turns) >= 2)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert len(call.llm.requests) == 1  # no second request: audio may have played
    assert record.turns[0].error is not None
    assert record.turns[0].heard_text == "First sentence is spoken."
    assert record.turns[1].heard_text == "Sorry."


@pytest.mark.parametrize("bug", [False, True])
async def test_a_failed_call_logs_the_error_inside_its_task_group(
    bug: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Not "ExceptionGroup: unhandled errors in a TaskGroup": the error itself, with its
    traceback when it is a bug rather than a voicekit error (a provider outage)."""
    from voicekit.errors import ProviderUnavailable

    call = make_call()
    error = RuntimeError("boom") if bug else ProviderUnavailable("down", provider="x")

    async def fails(stt_stream: Any) -> None:
        raise error

    call.session._stt_loop = fails  # type: ignore[method-assign]
    with caplog.at_level("ERROR", logger="voicekit.session.session"):
        record = await run_call(call, lambda call: anyio.sleep(1))
    assert record.end_reason == "error"
    [line] = [r for r in caplog.records if " failed: " in r.getMessage()]
    name = "RuntimeError: boom" if bug else "ProviderUnavailable: "
    assert name in line.getMessage()
    assert (line.exc_info is not None) is bug
