"""Barge-in: the agent stops at once and history keeps exactly the words that played."""

from __future__ import annotations

import anyio
import pytest

from tests.session_helpers import Call, anyio_backend, make_call, run_call, until, words_heard  # noqa: F401
from voicekit.stt import EndOfTurn, SpeechStarted, Transcript

pytestmark = pytest.mark.anyio

LONG_REPLY = (
    "Our opening hours are nine to five on weekdays and ten to two on Saturdays, "
    "and we are closed on Sundays and public holidays."
)


@pytest.mark.parametrize("talk_after_ms", [1130, 2370, 3610, 4990])
async def test_barge_in_keeps_exactly_the_words_that_played(talk_after_ms: int) -> None:
    call = make_call(
        utterances=["what are your hours", "wait a second"],
        replies=[LONG_REPLY, "Sure, take your time."],
    )

    async def caller(c: Call) -> None:
        await c.say(800, then_silence_ms=400)
        await until(lambda: c.media.sent_frames)
        await anyio.sleep(talk_after_ms / 1000)
        await c.say(700, then_silence_ms=500)
        await until(lambda: len(c.session.record.turns) >= 2)
        c.media.hang_up()

    record = await run_call(call, caller)
    first = record.turns[0]
    assert first.interrupted
    assert len(call.media.clears) == 1
    clear_at = call.media.clears[0]
    spoken = call.tts.all_utterances[0].text
    truth = words_heard(spoken, call.media.played_ms(until=clear_at))
    assert truth and truth != LONG_REPLY  # the test interrupts mid-reply
    assert first.heard_text == truth
    # What the LLM is told it said is exactly what played.
    assistant = [m for m in call.llm.requests[1] if m.role == "assistant"]
    assert [m.content for m in assistant] == [truth]
    assert record.transcript[1].text == truth and record.transcript[1].interrupted
    # Everything stopped: no audio of the first reply after the clear, TTS cancelled.
    assert call.tts.all_utterances[0].cancelled
    first_reply_frames = [t for t, _ in call.media.sent_frames if t <= clear_at]
    second_start = record.turns[1].first_frame_sent
    assert second_start is not None
    assert all(t <= clear_at or t >= second_start for t, _ in call.media.sent_frames)
    assert first_reply_frames


async def test_barge_in_cancels_the_llm_when_it_is_still_writing() -> None:
    call = make_call(
        utterances=["hours", "stop stop"],
        replies=[LONG_REPLY, "Okay."],
        llm={"tokens_per_second": 4},
    )

    async def caller(c: Call) -> None:
        await c.say(500, then_silence_ms=400)
        await until(lambda: c.media.sent_frames)
        await anyio.sleep(1.0)
        await c.say(700, then_silence_ms=500)
        await until(lambda: len(c.session.record.turns) >= 2)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert record.turns[0].interrupted
    assert call.llm.cancelled == 1 and call.llm.completed == 1
    # The interrupted reply's text ends where the LLM was stopped, not at the full reply.
    assert record.turns[0].agent_text != LONG_REPLY


async def test_one_word_is_not_an_interruption() -> None:
    call = make_call(utterances=["hours", "mm"], replies=[LONG_REPLY], stt={"word_ms": 5000})

    async def caller(c: Call) -> None:
        await c.say(500, then_silence_ms=400)
        await until(lambda: c.media.sent_frames)
        await anyio.sleep(1.0)
        await c.say(300)  # one short word while the agent speaks
        await c.quiet(200)
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert call.media.clears == []
    assert not record.turns[0].interrupted


async def test_echo_of_the_agents_own_words_is_ignored() -> None:
    call = make_call(utterances=["hours"], replies=[LONG_REPLY])

    async def caller(c: Call) -> None:
        await c.say(500, then_silence_ms=400)
        await until(lambda: c.media.sent_frames)
        await anyio.sleep(0.8)
        c.stt.streams[0].emit(Transcript("opening hours are nine", is_final=False))
        await anyio.sleep(0.5)
        assert c.media.clears == []
        c.stt.streams[0].emit(Transcript("no stop", is_final=False))
        await until(lambda: c.media.clears)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert record.turns[0].interrupted


async def test_without_alignment_heard_words_are_estimated_from_duration() -> None:
    call = make_call(
        utterances=["hours", "hold on"], replies=[LONG_REPLY, "Sure."], tts={"alignment": False}
    )

    async def caller(c: Call) -> None:
        await c.say(500, then_silence_ms=400)
        await until(lambda: c.media.sent_frames)
        await anyio.sleep(2.5)
        await c.say(700, then_silence_ms=500)
        await until(lambda: len(c.session.record.turns) >= 2)
        c.media.hang_up()

    record = await run_call(call, caller)
    heard = record.turns[0].heard_text
    truth = words_heard(
        call.tts.all_utterances[0].text, call.media.played_ms(until=call.media.clears[0])
    )
    assert heard and LONG_REPLY.startswith(heard)
    assert LONG_REPLY[len(heard)] == " "  # whole words only
    assert abs(len(heard) - len(truth)) <= 0.15 * len(truth)


async def test_voicemail_hangs_up_without_calling_the_llm() -> None:
    call = make_call(utterances=["Hi you have reached Bob please leave a message after the tone"])

    async def caller(c: Call) -> None:
        await c.say(1500, then_silence_ms=400)
        await until(lambda: c.media.stopped)

    record = await run_call(call, caller)
    assert record.end_reason == "voicemail" and call.hangups
    assert call.llm.requests == [] and call.tts.all_utterances == []


async def test_voicemail_can_leave_a_message_first() -> None:
    call = make_call(
        utterances=["The person you called is not available"],
        turn={"voicemail_action": "leave_message", "voicemail_message": "This is Acme, call us."},
    )

    async def caller(c: Call) -> None:
        await c.say(1500, then_silence_ms=400)
        await until(lambda: c.media.stopped)

    record = await run_call(call, caller)
    assert record.end_reason == "voicemail"
    assert [u.text for u in call.tts.all_utterances] == ["This is Acme, call us. "]
    assert call.hangups[0] >= max(t for t, _ in call.media.marks_reached)


@pytest.mark.parametrize("said", ["uh huh", "yeah okay", "Mm-hmm, right."])
async def test_a_backchannel_neither_interrupts_nor_gets_an_answer(said: str) -> None:
    call = make_call(utterances=["what are your hours", said], replies=[LONG_REPLY, "Unused."])

    async def caller(c: Call) -> None:
        await c.say(800, then_silence_ms=400)
        await until(lambda: c.media.sent_frames)
        await anyio.sleep(1.5)
        await c.say(600, then_silence_ms=500)  # over the agent, then silence: a whole turn
        await until(
            lambda: c.session.record.turns and c.session.record.turns[0].status != "pending"
        )
        await anyio.sleep(1.0)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert len(record.turns) == 1 and record.turns[0].status == "played"
    assert not record.turns[0].interrupted and call.media.clears == []
    assert len(call.llm.requests) == 1  # nothing answered the backchannel
    heard = [e for e in record.transcript if e.role == "user"]
    assert [(e.text, e.backchannel) for e in heard] == [
        ("what are your hours", False),
        (said, True),
    ]
    assert all(m.content != said for m in call.session.history.messages())


async def test_a_backchannel_word_with_more_words_still_interrupts() -> None:
    call = make_call(
        utterances=["what are your hours", "yeah but on sunday"],
        replies=[LONG_REPLY, "Closed on Sundays."],
    )

    async def caller(c: Call) -> None:
        await c.say(800, then_silence_ms=400)
        await until(lambda: c.media.sent_frames)
        await anyio.sleep(1.5)
        await c.say(900, then_silence_ms=500)
        await until(lambda: len(c.session.record.turns) >= 2)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert record.turns[0].interrupted and len(call.media.clears) == 1
    assert record.turns[1].user_text == "yeah but on sunday"


async def test_okay_when_the_agent_is_silent_is_a_turn() -> None:
    call = make_call(utterances=["okay"], replies=["Great, what can I do for you?"])

    async def caller(c: Call) -> None:
        await c.say(500, then_silence_ms=500)
        await until(
            lambda: c.session.record.turns and c.session.record.turns[0].status != "pending"
        )
        c.media.hang_up()

    record = await run_call(call, caller)
    assert record.turns[0].user_text == "okay" and len(call.llm.requests) == 1


async def noise_barges_in(c: Call, *, final: str = "") -> None:
    """Partial words over the agent (noise the STT takes for "the the"), then the turn
    ends with ``final`` words (none: the STT took them back)."""
    stream = c.stt.streams[0]
    stream.emit(SpeechStarted())
    stream.emit(Transcript("the the", is_final=False))
    await anyio.sleep(0.4)
    stream.emit(Transcript("", is_final=False))  # the STT takes the words back
    if final:
        stream.emit(Transcript(final, is_final=True))
    stream.emit(EndOfTurn())


@pytest.mark.parametrize("final", ["", "uh huh"])
async def test_after_a_false_barge_in_the_agent_goes_on_from_the_first_unheard_word(
    final: str,
) -> None:
    call = make_call(utterances=["what are your hours"], replies=[LONG_REPLY])

    async def caller(c: Call) -> None:
        await c.say(800, then_silence_ms=400)
        await until(lambda: c.media.sent_frames)
        await anyio.sleep(2.0)  # the LLM has written it all; part of it has played
        await noise_barges_in(c, final=final)
        await until(lambda: len(c.session.record.turns) >= 2)
        await until(lambda: c.session.record.turns[-1].status != "pending")
        c.media.hang_up()

    record = await run_call(call, caller)
    cut, resumed = record.turns[0], record.turns[1]
    assert cut.interrupted and cut.heard_text and cut.heard_text != LONG_REPLY
    assert resumed.status == "played" and len(call.llm.requests) == 1  # no new request
    # Together, the caller heard the whole reply: no word lost, none said twice.
    assert f"{cut.heard_text} {resumed.heard_text}".split() == LONG_REPLY.split()
    heard = [e for e in record.transcript if e.role == "user"]
    assert [e.text for e in heard] == ["what are your hours", *([final] if final else [])]


async def test_a_real_turn_after_a_barge_in_is_answered_not_resumed() -> None:
    call = make_call(utterances=["what are your hours"], replies=[LONG_REPLY, "Sure."])

    async def caller(c: Call) -> None:
        await c.say(800, then_silence_ms=400)
        await until(lambda: c.media.sent_frames)
        await anyio.sleep(2.0)
        await noise_barges_in(c, final="what about sundays")
        await until(lambda: len(c.session.record.turns) >= 2)
        await until(lambda: c.session.record.turns[-1].status != "pending")
        c.media.hang_up()

    record = await run_call(call, caller)
    assert record.turns[1].user_text == "what about sundays"
    assert record.turns[1].heard_text == "Sure." and len(call.llm.requests) == 2


async def test_a_question_left_as_a_partial_after_a_barge_in_is_answered_not_resumed() -> None:
    call = make_call(utterances=["what are your hours"], replies=[LONG_REPLY, "On Sundays too."])

    async def caller(c: Call) -> None:
        await c.say(800, then_silence_ms=400)
        await until(lambda: c.media.sent_frames)
        await anyio.sleep(2.0)
        stream = c.stt.streams[0]
        stream.emit(SpeechStarted())
        stream.emit(Transcript("what about sundays", is_final=False))  # never made final
        await anyio.sleep(0.4)
        stream.emit(EndOfTurn())
        await until(lambda: len(c.session.record.turns) >= 2)
        await until(lambda: c.session.record.turns[-1].status != "pending")
        c.media.hang_up()

    record = await run_call(call, caller)
    assert record.turns[1].user_text == "what about sundays"
    assert record.turns[1].heard_text == "On Sundays too."


async def test_okay_after_the_agent_asked_a_question_is_an_answer() -> None:
    question = "Shall I book it? You will get a text message to confirm the time and the day."
    call = make_call(utterances=["book me in", "okay"], replies=[question, "Done."])

    async def caller(c: Call) -> None:
        await c.say(800, then_silence_ms=400)
        await until(
            lambda: (
                c.session.replies.current is not None
                and "?" in c.session.replies.current.heard_text()
            )
        )
        await c.say(500, then_silence_ms=500)  # while the agent goes on after the question
        await until(lambda: len(c.session.record.turns) >= 2)
        await until(lambda: c.session.record.turns[-1].status != "pending")
        c.media.hang_up()

    record = await run_call(call, caller)
    assert record.turns[1].user_text == "okay" and record.turns[1].heard_text == "Done."
