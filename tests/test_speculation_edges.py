"""Speculative replies at their edges (from the hostile reviews): webhooks under way
during a guess, a guess whose turn ended without it, the cost of routing decisions, key
presses, transfers, long turns, an STT that takes its words back or says "likely over"
after every word, a "no" that sounds like a filler, and calls freed without the garbage
collector whatever became of their guesses."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from tests.flow_helpers import FakeWebhooks, booking_flow
from tests.session_helpers import (  # noqa: F401
    Call,
    anyio_backend,
    booking_tool,
    make_call,
    run_call,
    until,
)
from voicekit.flows import FlowRuntime, WebhookResult, parse_flow
from voicekit.flows.model import FunctionNode
from voicekit.records import CallRecord
from voicekit.session.speculation import QuietAfterFinal
from voicekit.stt import EndOfTurn, Transcript, TurnLikelyOver
from voicekit.testing import FakeSTTStream

pytestmark = pytest.mark.anyio


class SlowWebhooks(FakeWebhooks):
    """A CRM that takes ``delay_s`` to answer."""

    delay_s: float = 5.0

    async def run(
        self, node: FunctionNode, variables: Any, *, allow_private: bool, call_id: str
    ) -> WebhookResult:
        self.calls.append((node.id, dict(variables)))
        await anyio.sleep(self.delay_s)
        return self.results[node.id]


def booking_then_confirm() -> Any:
    return booking_flow({"id": "confirm", "prompt": "Tell the caller the reference {{ref}}."})


async def _webhook_and_guess(*, speculative: bool, webhook_first: bool) -> Any:
    """A reply waits on a 5 s booking webhook; the caller's next turn cuts it (the webhook
    goes on); on the turn after, a guess may start; the webhook returns before that
    turn ends (``webhook_first``) or after it. Returns the call record."""
    hooks = SlowWebhooks({"book": WebhookResult(ok=True, saved={"ref": "B-7"})})
    call = make_call(
        replies=[
            'Thank you. [[save_variables {"name": "Maria"}]] [[go_to_book]]',
            "One moment please.",
            "Let me check.",
            "Anything else?",
        ],
        llm={"first_token_ms": 20},
        turn={"speculative": speculative},
        responder=FlowRuntime(booking_then_confirm(), webhooks=hooks),  # type: ignore[arg-type]
    )

    async def caller(c: Call) -> None:
        await until(lambda: c.stt.streams)
        s = c.stt.streams[0]
        s.emit(Transcript("it's maria", is_final=True))
        s.emit(EndOfTurn())  # at once: no guess on this turn
        await until(lambda: hooks.calls)  # the booking webhook is running (5 s)
        await anyio.sleep(0.5)
        s.emit(Transcript("hello?", is_final=True))
        s.emit(EndOfTurn())  # cuts the reply waiting on the webhook; the webhook goes on
        await until(lambda: len(c.session.record.turns) == 2)
        s.emit(Transcript("is it done", is_final=True))  # a guess could start 150 ms later
        await anyio.sleep(6.0 if webhook_first else 0.5)
        s.emit(EndOfTurn())
        await until(lambda: len(c.session.record.turns) == 3)
        if not webhook_first:
            await anyio.sleep(6.0)  # the webhook returns now
        c.media.hang_up()

    return await run_call(call, caller)


async def test_a_guess_made_before_a_webhook_returned_is_not_promoted() -> None:
    plain = await _webhook_and_guess(speculative=False, webhook_first=True)
    assert plain.flow["variables"].get("ref") == "B-7"  # without speculation: known
    record = await _webhook_and_guess(speculative=True, webhook_first=True)
    # No guess while the booking is under way (its result would land on the engine a
    # promoted copy replaces): the turn is answered afresh, and the reference is kept.
    assert record.turns[-1].speculation is None
    assert record.flow["variables"].get("ref") == "B-7", record.flow


def count_text_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count how often the turn's whole text is joined (its cost grows with the turn)."""
    from voicekit.session.caller import CallerTurns

    built = [0]
    join = CallerTurns.text.fget
    assert join is not None

    def counted(self: CallerTurns) -> str:
        built[0] += 1
        return join(self)

    monkeypatch.setattr(CallerTurns, "text", property(counted))
    return built


async def _stt_events(events: Any, n: int) -> None:
    call = make_call(llm={"first_token_ms": 20})

    async def caller(c: Call) -> None:
        await until(lambda: c.stt.streams)
        s = c.stt.streams[0]
        for _ in range(n):
            for event in events:
                s.emit(event)
        await until(lambda: s._recv.statistics().current_buffer_used == 0)
        c.media.hang_up()

    await run_call(call, caller)


async def test_a_long_turn_is_not_joined_again_for_every_word(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An STT that finalizes word by word in one endless turn: the turn's text is built
    only while a guess runs, so 5,000 finals cost no text at all (it was built for each,
    making a long turn's cost grow with its square)."""
    built = count_text_builds(monkeypatch)
    await _stt_events([Transcript("word", is_final=True)], 5_000)
    assert built[0] <= 2


async def test_likely_over_after_every_word_costs_a_bounded_number_of_texts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hostile STT that says "likely over" after every final word: once the turn's
    guesses are used up, the cheap conditions stop each signal before the text (and the
    voicemail scan over it) is built."""
    built = count_text_builds(monkeypatch)
    signal = [Transcript("word", is_final=True), TurnLikelyOver("")]
    await _stt_events(signal, 2_000)
    assert built[0] <= 10


def menu_flow(answer_while_deciding: bool) -> Any:
    return parse_flow(
        {
            "start": "menu",
            "first_speaker": "caller",
            "answer_while_deciding": answer_while_deciding,
            "nodes": [
                {
                    "id": "menu",
                    "script": "Would you like to book or to cancel an appointment?",
                    "transitions": [
                        {"to": "book", "when": "the caller wants to book"},
                        {"to": "cancel", "when": "the caller wants to cancel"},
                    ],
                },
                {"id": "book", "type": "ending", "script": "Booking it."},
                {"id": "cancel", "type": "ending", "script": "Cancelling it."},
            ],
        }
    )


@pytest.mark.parametrize("alongside", [False, True])
async def test_a_discarded_flow_guess_counts_its_routing_decision(alongside: bool) -> None:
    """A flow guess cut off during its routing decision (speech.decide): the decision's
    request, cut off before it reported usage, is estimated from what it sent."""
    call = make_call(
        replies=["[[go_to_book]]", "Sure, one moment.", "[[go_to_cancel]]", "Sure."],
        llm={"first_token_ms": 400},
        responder=FlowRuntime(menu_flow(alongside), webhooks=FakeWebhooks({})),  # type: ignore[arg-type]
    )

    guess_requests: list[Any] = []

    async def caller(c: Call) -> None:
        await until(lambda: c.stt.streams)
        s = c.stt.streams[0]
        s.emit(Transcript("I want to", is_final=True))
        s.emit(TurnLikelyOver("I want to"))
        await until(lambda: c.llm.requests)  # the guess's decision request is out
        await anyio.sleep(0.1)
        guess_requests.extend(c.llm.requests)  # every request the guess made
        s.emit(Transcript("cancel my appointment", is_final=True))  # the guess is dropped
        s.emit(EndOfTurn())
        await until(lambda: c.hangups)

    record = await run_call(call, caller)
    turn = record.turns[0]
    assert turn.speculations == 1 and turn.speculation == "discarded"
    sent = sum(len(m.content) for r in guess_requests for m in r)
    assert turn.discarded_input_tokens >= sent // 4  # the pipeline's own estimate rule


async def test_a_turn_that_ends_without_its_guess_drops_it_and_the_call_counts_its_cost() -> None:
    from voicekit.records import CallRecord, TurnMetrics
    from voicekit.session.reply_state import Reply
    from voicekit.session.speculation import Speculator
    from voicekit.telephony import CallInfo

    dropped: list[Reply] = []
    speculator = Speculator(2, drop=dropped.append)
    first = Reply(1, "answer", TurnMetrics(0), state="speculative", user_text="um yeah")
    speculator.start(first, None, 0)
    speculator.end_turn(None)  # answered otherwise (a resume): the guess goes with it
    assert first.discarded and dropped == [first] and speculator.reply is None
    second = Reply(2, "answer", TurnMetrics(0), state="speculative", user_text="hello")
    second.unreported_chars_in, second.unreported_chars_out = 400, 40
    speculator.start(second, None, 0)
    record = CallRecord(CallInfo("c"), started_at=0.0)
    speculator.settle(record)  # the call ends mid-guess: it is dropped and charged
    assert second.discarded
    assert (record.speculations, record.speculations_discarded) == (2, 2)
    assert (record.discarded_input_tokens, record.discarded_output_tokens) == (100, 10)


async def test_a_key_press_drops_the_guess_and_leaves_its_cost_with_the_spoken_turn() -> None:
    call = make_call(replies=["We open at nine every day.", "You pressed one.", "Hours."])

    async def caller(c: Call) -> None:
        await until(lambda: c.stt.streams)
        s = c.stt.streams[0]
        s.emit(Transcript("what are your hours", is_final=True))
        s.emit(TurnLikelyOver("what are your hours"))
        await anyio.sleep(0.3)
        c.media.press("1")  # mid-turn: the keypad turn drops the guess
        await anyio.sleep(3)
        s.emit(EndOfTurn())
        await until(lambda: len(c.session.record.turns) >= 2)
        await anyio.sleep(3)
        c.media.hang_up()

    record = await run_call(call, caller)
    keys, spoken = record.turns
    assert keys.user_text == "[caller pressed 1]" and spoken.user_text == "what are your hours"
    assert (keys.speculations, keys.speculation) == (0, None), (keys.speculations, keys.speculation)
    assert spoken.speculations == 1


DESK = "+15551230000"


def transfer_flow() -> Any:
    return parse_flow(
        {
            "start": "ask",
            "first_speaker": "caller",
            "nodes": [
                {
                    "id": "ask",
                    "prompt": "Help the caller.",
                    "transitions": [{"to": "desk", "keywords": ["operator"]}],
                },
                {"id": "desk", "type": "transfer", "to": DESK, "script": "Transferring you."},
            ],
        },
        transfer_allowlist=[DESK],
    )


async def test_no_guess_while_a_transfer_is_under_way() -> None:
    transfers: list[tuple[float, float]] = []

    async def transfer(destination: str) -> None:
        start = anyio.current_time()
        await anyio.sleep(3.0)  # the provider's transfer API takes its time
        transfers.append((start, anyio.current_time()))

    call = make_call(
        replies=["Sure, what else can I do for you?"],
        agent={"transfer_allowlist": [DESK]},
        transfer=transfer,
        responder=FlowRuntime(transfer_flow(), webhooks=FakeWebhooks({})),  # type: ignore[arg-type]
    )

    async def caller(c: Call) -> None:
        await until(lambda: c.stt.streams)
        s = c.stt.streams[0]
        s.emit(Transcript("operator please", is_final=True))
        s.emit(EndOfTurn())
        await until(lambda: c.session.record.turns)  # "Transferring you." has played
        await anyio.sleep(0.3)
        s.emit(Transcript("hello is anyone there", is_final=True))  # a guess, 150 ms on
        await anyio.sleep(0.5)
        s.emit(EndOfTurn())
        await until(lambda: transfers)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert transfers and record.speculations == 0


async def test_an_stt_that_takes_its_words_back_gets_no_guesses() -> None:
    """Guesses start on final words only: an STT that shows a partial, says the turn is
    likely over, takes the word back and ends an empty turn, 200 times, costs nothing."""
    call = make_call(llm={"first_token_ms": 20})

    async def caller(c: Call) -> None:
        await until(lambda: c.stt.streams)
        s = c.stt.streams[0]
        for i in range(200):
            s.emit(Transcript(f"noise{i}", is_final=False))
            s.emit(TurnLikelyOver(""))
            await anyio.sleep(0.01)
            s.emit(Transcript("", is_final=False))  # taken back
            s.emit(EndOfTurn())
            await anyio.sleep(0.01)
        await anyio.sleep(1)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert record.turns == []
    assert call.session._speculator.unattached == []
    assert call.llm.requests == []


async def test_a_webhook_that_returns_after_a_promotion_is_not_lost() -> None:
    plain = await _webhook_and_guess(speculative=False, webhook_first=False)
    assert plain.flow["variables"].get("ref") == "B-7", plain.flow
    record = await _webhook_and_guess(speculative=True, webhook_first=False)
    # No guess while the webhook is under way: the turn is answered afresh, and the
    # booking's reference lands on the flow the call goes on with.
    assert record.turns[-1].speculation is None
    assert record.flow["variables"].get("ref") == "B-7", record.flow


def _parts(session: Any) -> dict[str, Any]:
    return {
        "session": weakref.ref(session),
        "replies": weakref.ref(session.replies),
        "speculator": weakref.ref(session._speculator),
        "ending": weakref.ref(session.ending),
        "pipeline": weakref.ref(session._pipeline),
        "playout": weakref.ref(session.playout),
        "media": weakref.ref(session.media),
        "guesses": weakref.ref(session._guesses),
    }


async def _hours_asked(c: Call, refs: dict[str, Any], *, likely_over: bool = True) -> FakeSTTStream:
    """Once the call is up: its parts into ``refs``, then "what are your hours" final from
    the STT (and, with ``likely_over``, its signal that the turn is probably over)."""
    await until(lambda: c.stt.streams and c.session._pipeline is not None)
    refs.update(_parts(c.session))
    s = c.stt.streams[0]
    s.emit(Transcript("what are your hours", is_final=True))
    if likely_over:
        s.emit(TurnLikelyOver("what are your hours"))
    return s


async def assert_freed_without_gc(
    make: Callable[[], Call],
    caller: Callable[[Call], Awaitable[None]],
    refs: dict[str, Any],
    check: Callable[[CallRecord], None] = lambda record: None,
) -> None:
    """Run a call (made here, so no test frame holds it) with the garbage collector off;
    once it is over, nothing ``refs`` points at may still be alive."""
    gc.collect()
    gc.disable()
    try:
        call = make()
        record = await run_call(call, caller)
        check(record)
        del call, record
        await anyio.sleep(0.1)
        assert [n for n, r in refs.items() if r() is not None] == []
    finally:
        gc.enable()


@pytest.mark.parametrize("ending", ["held_guess", "discarded_guess", "promoted", "flow_held"])
async def test_a_call_with_guesses_is_freed_without_the_garbage_collector(ending: str) -> None:
    responder = None
    if ending == "flow_held":
        responder = FlowRuntime(booking_flow(), webhooks=FakeWebhooks({}))  # type: ignore[arg-type]
    refs: dict[str, Any] = {}

    def make() -> Call:
        return make_call(
            replies=["We open at nine every day of the week.", "Sure.", "Closed on Sunday."],
            llm={"first_token_ms": 20},
            responder=responder,
        )

    async def caller(c: Call) -> None:
        s = await _hours_asked(c, refs)
        await until(lambda: c.session._speculator.reply is not None)
        refs["guess"] = weakref.ref(c.session._speculator.reply)
        await anyio.sleep(1.0)  # the guess wrote its answer; its audio is held
        if ending == "discarded_guess":
            s.emit(Transcript("on sunday", is_final=True))
            await anyio.sleep(0.05)
        elif ending == "promoted":
            s.emit(EndOfTurn())
            await until(lambda: c.session.record.turns)
        c.media.hang_up()

    await assert_freed_without_gc(make, caller, refs)


@pytest.mark.parametrize("fail_after", [0, 3])
async def test_a_call_whose_guess_failed_is_freed_without_the_garbage_collector(
    fail_after: int,
) -> None:
    def make() -> Call:
        return make_call(
            replies=["We open at nine every day of the week.", "Closed on Sunday."],
            llm={"first_token_ms": 20, "fail_on_reply": 0, "fail_after_tokens": fail_after},
        )

    refs: dict[str, Any] = {}

    async def caller(c: Call) -> None:
        s = await _hours_asked(c, refs)
        await until(lambda: c.llm.requests)
        if c.session._speculator.reply is not None:
            refs["guess"] = weakref.ref(c.session._speculator.reply)
        await anyio.sleep(1.0)
        s.emit(EndOfTurn())
        await until(lambda: c.session.record.turns)
        await anyio.sleep(1.0)
        c.media.hang_up()

    def check(record: CallRecord) -> None:
        assert record.turns and record.turns[0].speculation != "promoted"

    await assert_freed_without_gc(make, caller, refs, check)


async def test_a_call_whose_plain_reply_failed_is_freed_without_the_garbage_collector() -> None:
    def make() -> Call:
        return make_call(
            replies=["We open at nine every day of the week.", "Closed on Sunday."],
            llm={"first_token_ms": 20, "fail_on_reply": 0},
            turn={"speculative": False},
        )

    refs: dict[str, Any] = {}

    async def caller(c: Call) -> None:
        s = await _hours_asked(c, refs, likely_over=False)
        s.emit(EndOfTurn())
        await until(lambda: c.session.record.turns)
        await anyio.sleep(3.0)
        c.media.hang_up()

    def check(record: CallRecord) -> None:
        assert record.turns[0].status == "failed"

    await assert_freed_without_gc(make, caller, refs, check)


def test_a_no_appended_to_the_guess_is_not_the_same_turn() -> None:
    from voicekit.session.speculation import same_turn

    # "uh-uh", "mm-mm" and "uh uh" mean no; "mm-hmm" means yes: none is a filler.
    assert not same_turn("Friday?", "Friday? Mm-mm.")
    assert not same_turn("book it", "book it uh-uh")
    assert not same_turn("book it", "book it uh uh")
    assert not same_turn("book it", "book it mm-hmm")
    assert same_turn("uh, book it", "book it")


def guess_then_no(words: str, no: str) -> Callable[[Call], Awaitable[None]]:
    """The caller says ``words``, quiet long enough for a guess on them, then ``no``."""

    async def caller(c: Call) -> None:
        await until(lambda: c.stt.streams)
        s = c.stt.streams[0]
        s.emit(Transcript(words, is_final=True))
        await until(lambda: c.llm.requests)  # 150 ms of quiet: a guess on the words
        await anyio.sleep(0.2)
        s.emit(Transcript(no, is_final=True))
        await anyio.sleep(0.1)
        s.emit(EndOfTurn())
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    return caller


async def test_a_guess_is_not_heard_when_the_caller_then_says_uh_uh() -> None:
    call = make_call(
        replies=["Great, Friday it is.", "Which day then?"], llm={"first_token_ms": 20}
    )
    record = await run_call(call, guess_then_no("Friday?", "Uh-uh."))
    turn = record.turns[0]
    assert turn.user_text == "Friday? Uh-uh."
    assert turn.speculation != "promoted", (turn.speculation, turn.heard_text)


async def test_a_guess_is_counted_when_the_caller_hangs_up_while_the_turn_cuts_a_reply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from voicekit.testing import FakeMediaStream

    original = FakeMediaStream.clear

    async def slow_clear(self: FakeMediaStream) -> None:
        await anyio.sleep(0.05)  # a real line: the clear message goes over the network
        await original(self)

    monkeypatch.setattr(FakeMediaStream, "clear", slow_clear)
    call = make_call(
        replies=["We open at nine every day.", "You pressed one, let me read the menu.", "X."],
        llm={"first_token_ms": 20},
    )

    async def caller(c: Call) -> None:
        await until(lambda: c.stt.streams)
        s = c.stt.streams[0]
        s.emit(Transcript("what are your hours", is_final=True))
        s.emit(TurnLikelyOver("what are your hours"))
        await until(lambda: c.session._speculator.reply is not None)
        c.media.press("1")
        c.media.press("#")
        await until(lambda: c.session.replies.speaking)  # the key turn's answer plays
        s.emit(EndOfTurn())  # the spoken turn: it cuts the key answer (clear) ...
        await anyio.sleep(0.01)
        c.media.hang_up()  # ... and the caller hangs up meanwhile

    record = await run_call(call, caller)
    assert record.speculations == 1


async def test_no_tool_runs_for_a_guess_the_caller_answered_mm_mm() -> None:
    book_table, ran = booking_tool()
    call = make_call(
        replies=["[[book_table]]", "Done, it is booked.", "Okay, I won't book it."],
        llm={"first_token_ms": 20},
        tools=[book_table],
    )
    record = await run_call(call, guess_then_no("Book it?", "Mm-mm."))
    assert ran == [] and record.turns[0].speculation == "discarded"
    assert call.llm.requests[-1][-1].content == "Book it? Mm-mm."  # the model hears the no


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_quiet_timer_fires_when_the_loop_was_late_to_start_it(backend: str) -> None:
    """A final heard while the loop is busy: the quiet has already lasted when the timer
    first runs. It fires at once; a negative sleep raised ValueError and ended the call
    (anyio 4.16 and trio refuse one), which the load benchmark hit at 200 calls."""
    fired: list[float] = []

    async def main() -> None:
        quiet = QuietAfterFinal(0.01, lambda: fired.append(anyio.current_time()))
        async with anyio.create_task_group() as tg:
            quiet.heard()
            quiet.final(tg)
            time.sleep(0.03)  # noqa: ASYNC251  (a busy loop: the timer task has not run yet)

    anyio.run(main, backend=backend)
    assert len(fired) == 1
