"""Speculative replies on the virtual clock: started when the turn is probably over,
heard only when the end of turn confirms the same words, dropped unheard otherwise."""

from __future__ import annotations

import anyio
import pytest

from tests.flow_helpers import FakeWebhooks, booking_flow
from tests.session_helpers import (  # noqa: F401
    CHAR_MS,
    Call,
    anyio_backend,
    booking_tool,
    goes_on,
    make_call,
    run_call,
    until,
)
from voicekit.flows import FlowRuntime, WebhookResult
from voicekit.records import CallRecord
from voicekit.session.speculation import same_turn
from voicekit.stt import EndOfTurn, Transcript

pytestmark = pytest.mark.anyio

LIKELY = {"likely_over_ms": 100.0}  # the fake STT: likely over at 100 ms, end of turn at 300


def spoken_ms(call: Call) -> float:
    return call.media.played_ms()


async def one_turn(call: Call, speak_ms: float = 800) -> CallRecord:
    """The caller says one utterance (every scripted word shows within ``speak_ms``)."""

    async def caller(c: Call) -> None:
        await c.say(speak_ms, then_silence_ms=400)
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    return await run_call(call, caller)


def test_the_same_turn_ignores_case_punctuation_and_fillers() -> None:
    assert same_turn("Um, what are your hours?", "what are your hours")
    assert same_turn("what uh are your hours", "What are your... hours")
    assert not same_turn("what are your hours", "what are your hours on sunday")
    assert not same_turn("book it", "don't book it")


async def test_a_promoted_speculation_plays_sooner_by_the_time_it_saved() -> None:
    plain = make_call(utterances=["what are your hours"], stt=LIKELY, turn={"speculative": False})
    fast = make_call(utterances=["what are your hours"], stt=LIKELY)
    slow_record = await one_turn(plain)
    record = await one_turn(fast)

    (turn,) = record.turns
    assert turn.speculation == "promoted" and turn.speculations == 1
    assert turn.turn_likely_over is not None and turn.stt_end_of_turn is not None
    assert turn.llm_request == turn.turn_likely_over < turn.stt_end_of_turn
    # The LLM and TTS ran during the 200 ms between likely-over and end of turn.
    saved = slow_record.turns[0].ttfa_ms - turn.ttfa_ms  # type: ignore[operator]
    assert saved == pytest.approx(200, abs=21)
    # One request, asked with the caller's words; the history holds them once.
    assert len(fast.llm.requests) == 1
    assert fast.llm.requests[0][-1].content == "what are your hours"
    assert [m.role for m in fast.session.history.turns] == ["user", "assistant"]
    assert turn.heard_text == turn.agent_text and turn.status == "played"
    assert (record.speculations, record.speculations_promoted) == (1, 1)
    assert record.speculations_discarded == 0 and record.discarded_output_tokens == 0


async def test_resumed_speech_drops_the_speculation_and_none_of_its_audio_plays() -> None:
    call = make_call(
        utterances=["what are your hours on sunday please"],
        replies=["We are open from nine to five every weekday.", "On Sunday we are closed."],
        stt={**LIKELY, "endpoint_ms": 900},
    )

    async def caller(c: Call) -> None:
        await c.say(400, then_silence_ms=700)  # "what are your", a pause: likely over
        await c.say(800, then_silence_ms=1000)  # ... and it goes on
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    record = await run_call(call, caller)
    (turn,) = record.turns
    guess, answer = call.tts.all_utterances
    assert guess.cancelled and guess.chunks_sent > 0  # it had audio, held
    assert guess.text.startswith("We are open")
    # Only the real answer reached the line: exactly its audio, frame for frame.
    assert turn.agent_text == "On Sunday we are closed."
    assert spoken_ms(call) == pytest.approx(len(answer.text) * CHAR_MS, abs=20)
    assert turn.heard_text == "On Sunday we are closed."
    # A second guess, on the whole sentence, was the one heard.
    assert turn.speculation == "promoted" and turn.speculations == 2
    assert turn.discarded_output_tokens > 0 and turn.discarded_input_tokens > 0
    assert record.speculations_discarded == 1 and record.discarded_output_tokens > 0
    # Its text never entered the history or the transcript.
    history = " ".join(m.content for m in call.session.history.turns)
    assert "nine to five" not in history
    assert [e.text for e in record.transcript] == [
        "what are your hours on sunday please",
        "On Sunday we are closed.",
    ]
    assert call.llm.requests[1][-1].content == "what are your hours on sunday please"


async def test_other_words_at_the_end_of_turn_start_a_fresh_reply() -> None:
    """The core's fallback (a final transcript, then quiet) speculates for an STT with no
    likely-over signal; a final with more words drops the guess."""
    call = make_call(replies=["We open at nine.", "On Sundays we are closed."])

    async def caller(c: Call) -> None:
        await until(lambda: c.stt.streams)
        stream = c.stt.streams[0]
        stream.emit(Transcript("What are your hours?", is_final=True))
        await until(lambda: c.llm.requests)  # 150 ms of quiet: speculation
        stream.emit(Transcript("On Sunday?", is_final=True))
        await anyio.sleep(0.05)
        stream.emit(EndOfTurn())
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    record = await run_call(call, caller)
    first, second = call.llm.requests
    assert first[-1].content == "What are your hours?"
    assert second[-1].content == "What are your hours? On Sunday?"
    (turn,) = record.turns
    assert turn.heard_text == "On Sundays we are closed." and turn.speculation == "discarded"
    assert call.llm.cancelled == 1
    assert [m.content for m in call.session.history.turns if m.role == "user"] == [
        "What are your hours? On Sunday?"
    ]


async def test_a_filler_after_the_guess_still_promotes_it() -> None:
    call = make_call(replies=["We open at nine."])

    async def caller(c: Call) -> None:
        await until(lambda: c.stt.streams)
        stream = c.stt.streams[0]
        stream.emit(Transcript("What are your hours?", is_final=True))
        await until(lambda: c.llm.requests)
        stream.emit(Transcript("um", is_final=False))
        stream.emit(EndOfTurn())
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert len(call.llm.requests) == 1
    assert record.turns[0].speculation == "promoted"
    assert record.turns[0].heard_text == "We open at nine."


async def test_a_speculations_tool_runs_only_once_the_turn_is_confirmed() -> None:
    book_table, ran = booking_tool()
    call = make_call(
        utterances=["book me a table"],
        replies=["[[book_table]]", "Done, your table is booked."],
        llm={"first_token_ms": 20},
        stt=LIKELY,
        tools=[book_table],
    )
    record = await one_turn(call)
    (turn,) = record.turns
    assert turn.speculation == "promoted"
    assert len(ran) == 1 and turn.stt_end_of_turn is not None
    # The model asked for it well before the end of turn; it waited for the turn.
    assert ran[0] >= turn.stt_end_of_turn
    assert turn.heard_text == "Done, your table is booked."


async def test_a_discarded_speculations_tool_never_runs() -> None:
    book_table, ran = booking_tool()
    call = make_call(
        utterances=["book me a table no wait for tomorrow"],
        replies=["[[book_table]]", "For tomorrow, at what time?"],
        llm={"first_token_ms": 20},
        stt={**LIKELY, "endpoint_ms": 900},
        tools=[book_table],
    )
    record = await run_call(call, goes_on(500, then_silence_ms=1000))
    assert ran == []
    assert record.turns[0].heard_text == "For tomorrow, at what time?"
    assert record.turns[0].tools == []


async def test_at_most_the_configured_speculations_per_turn() -> None:
    words = "one two three four five six seven eight nine"
    call = make_call(
        utterances=[words],
        replies=["A.", "B.", "The answer."],
        stt={**LIKELY, "endpoint_ms": 900},
    )

    async def caller(c: Call) -> None:
        for _ in range(3):  # three pauses mid-sentence, each one "likely over"
            await c.say(400, then_silence_ms=300)
        await c.say(400, then_silence_ms=1200)
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    record = await run_call(call, caller)
    (turn,) = record.turns
    assert turn.speculations == 2 and turn.speculation == "discarded"
    assert len(call.llm.requests) == 3  # two guesses, then the answer after the end of turn
    assert turn.heard_text == "The answer."
    assert turn.llm_request is not None and turn.llm_request >= turn.stt_end_of_turn  # type: ignore[operator]


async def test_speculation_can_be_turned_off() -> None:
    call = make_call(utterances=["what are your hours"], stt=LIKELY, turn={"speculative": False})
    record = await one_turn(call)
    assert record.turns[0].speculations == 0 and record.turns[0].speculation is None
    assert record.turns[0].llm_request >= record.turns[0].stt_end_of_turn  # type: ignore[operator]


async def test_a_flows_speculation_carries_its_decision_and_its_webhook_waits() -> None:
    hooks = FakeWebhooks({"book": WebhookResult(ok=True, saved={"ref": "B-7"})})
    call = make_call(
        utterances=["it's maria"],
        replies=['Thank you, Maria. [[save_variables {"name": "Maria"}]] [[go_to_book]]'],
        llm={"first_token_ms": 20},
        stt=LIKELY,
        responder=FlowRuntime(booking_flow(), webhooks=hooks),  # type: ignore[arg-type]
    )

    async def caller(c: Call) -> None:
        await c.say(400, then_silence_ms=400)
        await until(lambda: c.hangups)

    record = await run_call(call, caller)
    turn = record.turns[0]
    assert turn.speculation == "promoted"
    assert turn.heard_text == "Thank you, Maria. Booked, reference B-7."
    assert [node for node, _ in hooks.calls] == ["book"]
    assert record.flow is not None and record.flow["variables"]["name"] == "Maria"
    assert [s["target"] for s in record.flow["path"]] == ["ask", "book", "done"]


async def test_a_discarded_flow_speculation_changes_nothing_and_calls_no_webhook(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="voicekit.flows.engine")
    hooks = FakeWebhooks({"book": WebhookResult(ok=True, saved={"ref": "B-7"})})
    call = make_call(
        utterances=["it's maria no sorry it's anna"],
        replies=[
            '[[save_variables {"name": "Maria"}]] [[go_to_book]]',
            "Sorry, was that Anna?",
        ],
        llm={"first_token_ms": 20},
        stt={**LIKELY, "endpoint_ms": 900},
        responder=FlowRuntime(booking_flow(), webhooks=hooks),  # type: ignore[arg-type]
    )
    record = await run_call(call, goes_on(500, then_silence_ms=1100))
    assert hooks.calls == []  # the guess reached the webhook node and waited there
    assert record.turns[0].heard_text == "Sorry, was that Anna?"
    assert record.flow is not None and "name" not in record.flow["variables"]
    assert [s["target"] for s in record.flow["path"]] == ["ask"]
    # The guess's move is in the log, marked as one.
    moves = [r.getMessage() for r in caplog.records if "flow ask -> book" in r.getMessage()]
    assert moves and all(m.endswith("in a speculative reply") for m in moves)


async def test_a_keyword_turn_of_a_flow_is_not_speculated() -> None:
    from tests.flow_helpers import example_flow

    call = make_call(
        utterances=["what are your opening hours"],
        stt=LIKELY,
        responder=FlowRuntime(example_flow(), webhooks=FakeWebhooks({})),  # type: ignore[arg-type]
    )

    async def caller(c: Call) -> None:
        await until(lambda: len(c.session.record.turns) == 1)  # the greeting
        await c.say(800, then_silence_ms=600)
        await until(lambda: len(c.session.record.turns) == 2)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert record.speculations == 0 and call.llm.requests == []
    assert record.turns[1].heard_text == example_flow().node("hours").script


def test_the_simulate_waterfall_shows_a_speculative_turn_in_time_order() -> None:
    from voicekit.records import TurnMetrics
    from voicekit.simulate.waterfall import waterfall

    turn = TurnMetrics(
        1,
        user_speech_end=10.0,
        turn_likely_over=10.1,
        llm_request=10.1,
        stt_end_of_turn=10.3,
        llm_first_token=10.35,
        first_segment=10.55,
        tts_first_audio=10.7,
        first_frame_sent=10.7,
        speculations=2,
        speculation="promoted",
        discarded_input_tokens=120,
        discarded_output_tokens=4,
    )
    lines = waterfall(turn)
    labels = [line.split("  ")[1].strip() for line in lines[1:-1]]
    assert labels[:3] == ["turn likely over (speculation)", "LLM request", "end of turn (STT)"]
    assert lines[-1].strip() == "speculation: promoted (2 started; 124 LLM tokens on dropped ones)"
