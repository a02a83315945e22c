"""CallSession: streaming order, fast path, greeting, replace-on-new-turn, idle, farewell."""

from __future__ import annotations

import pytest

from tests.session_helpers import Call, anyio_backend, make_call, run_call, until  # noqa: F401
from voicekit.audio import ULAW_8K
from voicekit.records import TIMELINE_FIELDS
from voicekit.testing import tokenize

pytestmark = pytest.mark.anyio


async def test_reply_streams_while_the_llm_is_still_writing() -> None:
    reply = (
        "Let me check that for you, one moment. Your order shipped yesterday and "
        "should arrive on Friday. Anything else?"
    )
    call = make_call(
        utterances=["where is my order"], replies=[reply], llm={"tokens_per_second": 10}
    )

    async def caller(c: Call) -> None:
        await c.say(800, then_silence_ms=400)
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    record = await run_call(call, caller)
    turn = record.turns[0]
    llm_done = turn.llm_first_token + (len(tokenize(reply)) - 1) / 10  # type: ignore[operator]
    assert turn.first_frame_sent is not None and turn.first_frame_sent < llm_done - 1.0
    # No batching: the first frame leaves the moment the TTS's first audio arrives.
    assert turn.first_frame_sent == pytest.approx(turn.tts_first_audio, abs=1e-6)
    utterance = call.tts.all_utterances[0]
    assert utterance.texts == [
        "Let me check that for you, ",
        "one moment. ",
        "Your order shipped yesterday and should arrive on Friday. ",
        "Anything else? ",
    ]
    # Whole 20 ms frames, up to three a message ([turn] playout_message_ms).
    assert all(len(frame) in (160, 320, 480) for _, frame in call.media.sent_frames)
    assert call.media.clears == [] and not turn.interrupted
    assert turn.heard_text == reply


async def test_first_clause_fast_path_starts_speech_before_the_sentence_ends() -> None:
    reply = "I can certainly help with that, and the answer is quite long indeed."
    call = make_call(utterances=["can you help"], replies=[reply])

    async def caller(c: Call) -> None:
        await c.say(600, then_silence_ms=400)
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    record = await run_call(call, caller)
    turn = record.turns[0]
    first_piece = call.tts.all_utterances[0].texts[0]
    assert first_piece == "I can certainly help with that, "
    # The first piece was ready after the tokens up to ", and": 8 tokens at 40/s.
    assert turn.first_segment - turn.llm_first_token == pytest.approx(7 / 40, abs=1e-6)  # type: ignore[operator]


async def test_timeline_is_complete_and_in_order_and_reported() -> None:
    call = make_call(utterances=["hello"], replies=["Hi, how can I help you today?"])

    async def caller(c: Call) -> None:
        await c.say(500, then_silence_ms=400)
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    record = await run_call(call, caller)
    turn = record.turns[0]
    # Every point but the speculation's (this STT never says a turn is likely over).
    names = [name for name in TIMELINE_FIELDS if name != "turn_likely_over"]
    points = [getattr(turn, name) for name in names]
    assert all(p is not None for p in points), dict(zip(names, points, strict=True))
    assert turn.turn_likely_over is None and turn.speculations == 0
    assert points == sorted(points)
    # The fakes' latencies show up exactly: EOT 300 ms after speech end, first token
    # 250 ms after the request, first audio 150 ms after the first text.
    assert turn.stt_end_of_turn - turn.user_speech_end == pytest.approx(0.30, abs=0.021)  # type: ignore[operator]
    assert turn.llm_first_token - turn.llm_request == pytest.approx(0.25, abs=1e-6)  # type: ignore[operator]
    assert turn.tts_first_audio - turn.first_segment == pytest.approx(0.15, abs=1e-6)  # type: ignore[operator]
    assert turn.ttfa_ms is not None and turn.ttfa_ms > 0
    # Every frame of the reply went out on schedule (virtual time: exactly).
    heard_ms = len(call.media.played_audio()) / ULAW_8K.bytes_per_second * 1000
    assert turn.frames_sent >= heard_ms // 20 > 0
    assert turn.max_frame_late_ms == 0.0 and turn.underruns == 0
    names = [name for name, _ in call.hooks]
    assert names[0] == "call_started" and names[-1] == "call_ended"
    assert ("turn_completed", turn) in call.hooks
    assert call.hooks[-1][1] is record


async def test_greeting_when_the_agent_speaks_first() -> None:
    call = make_call(agent={"first_speaker": "agent", "greeting": "Thanks for calling Acme."})

    async def caller(c: Call) -> None:
        await c.quiet(4000)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert call.tts.all_utterances[0].text == "Thanks for calling Acme. "
    assert call.llm.requests == []
    assert (
        record.transcript[0].role == "agent"
        and record.transcript[0].text == "Thanks for calling Acme."
    )
    greeting = record.turns[0]
    assert greeting.first_frame_sent - greeting.first_segment == pytest.approx(0.15, abs=1e-6)  # type: ignore[operator]
    assert call.session.history.turns[0].content == "Thanks for calling Acme."


async def test_a_new_end_of_turn_replaces_the_reply_in_progress() -> None:
    call = make_call(
        utterances=["I want to book", "an appointment for Tuesday"],
        replies=["This reply is never heard.", "Tuesday works."],
        llm={"first_token_ms": 1500},
    )

    async def caller(c: Call) -> None:
        await c.say(600, then_silence_ms=400)  # turn 1 ends at 0.9 s
        await c.say(800, then_silence_ms=400)  # turn 2 ends at 2.1 s, before any reply audio
        await until(lambda: len(c.session.record.turns) >= 2)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert call.llm.cancelled >= 1
    second = call.llm.requests[1]
    assert [m.role for m in second] == ["system", "user"]
    assert second[1].content == "I want to book an appointment for Tuesday"
    # The replaced reply never reached the TTS: the only utterance is the second reply's.
    assert [u.text for u in call.tts.all_utterances] == ["Tuesday works. "]
    assert [e.text for e in record.transcript if e.role == "agent"] == ["Tuesday works."]


async def test_idle_prompts_then_farewell_then_hang_up() -> None:
    call = make_call(
        agent={"first_speaker": "agent", "greeting": "Hello.", "farewell": "Goodbye now."},
        turn={"idle_timeout_s": 2.0, "idle_prompts": ["Are you there?", "Still there?"]},
    )

    async def caller(c: Call) -> None:
        await until(lambda: c.media.stopped)

    record = await run_call(call, caller)
    assert record.end_reason == "idle"
    assert [u.text.strip() for u in call.tts.all_utterances] == [
        "Hello.",
        "Are you there?",
        "Still there?",
        "Goodbye now.",
    ]
    played_ends = [t for t, _ in call.media.marks_reached]
    # Each prompt (and finally the farewell) starts idle_timeout after the previous
    # utterance was heard to its end (its last mark).
    for reply_id, after in enumerate(record.turns[1:], start=1):
        heard_end = max(
            t for t, name in call.media.marks_reached if name.startswith(f"r{reply_id}.")
        )
        assert after.first_segment - heard_end == pytest.approx(2.0, abs=0.021)  # type: ignore[operator]
    # Hang-up only after the farewell's last mark, with every frame played.
    assert call.hangups and call.hangups[0] >= max(played_ends)
    assert call.media.clears == []


async def test_maximum_call_length_says_farewell_then_hangs_up() -> None:
    call = make_call(
        utterances=["tell me everything"],
        replies=["This is a very long answer that goes on and on for quite a while, " * 4],
        agent={"farewell": "Sorry, we are out of time."},
        turn={"max_call_seconds": 5.0},
    )

    async def caller(c: Call) -> None:
        await c.say(600, then_silence_ms=400)
        await until(lambda: c.media.stopped)

    record = await run_call(call, caller)
    assert record.end_reason == "max_duration"
    farewell = call.tts.all_utterances[-1]
    assert farewell.text == "Sorry, we are out of time. " and farewell.ended
    assert record.turns[0].interrupted  # the long answer was cut at the limit
    last_mark = max(t for t, _ in call.media.marks_reached)
    assert call.hangups[0] >= last_mark
    assert call.hangups[0] >= 5.0


async def test_history_has_instructions_knowledge_and_a_window() -> None:
    call = make_call(
        utterances=["first question", "second question"],
        replies=["First answer.", "Second answer."],
        agent={"instructions": "Be brief.", "knowledge": "We open at nine.", "history_turns": 1},
    )

    async def caller(c: Call) -> None:
        await c.say(500, then_silence_ms=400)
        await until(lambda: c.session.record.turns)
        await c.say(500, then_silence_ms=400)
        await until(lambda: len(c.session.record.turns) == 2)
        c.media.hang_up()

    await run_call(call, caller)
    system, *rest = call.llm.requests[1]
    assert system.role == "system" and "Be brief." in system.content
    assert "We open at nine." in system.content
    assert [(m.role, m.content) for m in rest] == [("user", "second question")]
