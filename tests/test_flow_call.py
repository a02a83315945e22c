"""A flow in a whole call, on the virtual clock with the fake providers: scripts and
keyword moves with no LLM request, one request answering and deciding on a prompt node,
ending and transfer nodes, barge-in during a script, the flow state in the record and in
each turn's hook."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.flow_helpers import DESK, FakeWebhooks, booking_flow, example_flow
from tests.session_helpers import Call, anyio_backend, make_call, run_call, until  # noqa: F401
from voicekit.flows import FlowRuntime, WebhookResult, parse_flow
from voicekit.records import CallRecord

pytestmark = pytest.mark.anyio


def runtime(flow: Any = None, **results: WebhookResult) -> FlowRuntime:
    return FlowRuntime(flow or example_flow(), webhooks=FakeWebhooks(dict(results)))  # type: ignore[arg-type]


async def test_scripts_and_keywords_hold_a_conversation_with_no_llm_request() -> None:
    transfers: list[str] = []

    async def transfer(to: str) -> None:
        transfers.append(to)

    call = make_call(
        utterances=["what are your opening hours", "can I speak to a person"],
        agent={"transfer_allowlist": [DESK]},
        transfer=transfer,
        responder=runtime(),
    )

    async def caller(c: Call) -> None:
        await until(lambda: len(c.session.record.turns) == 1)  # the greeting played
        await c.say(800, then_silence_ms=600)
        await until(lambda: len(c.session.record.turns) == 2)
        await c.say(800, then_silence_ms=600)
        await until(lambda: transfers)

    record = await run_call(call, caller)
    flow = example_flow()
    heard = [t.heard_text for t in record.turns]
    assert heard == [
        flow.node("greeting").script,
        flow.node("hours").script,
        "Of course, putting you through now.",
    ]
    assert call.llm.requests == []  # every word of this call came from the flow file
    assert transfers == [DESK] and record.end_reason == "transferred"
    assert record.flow is not None and record.flow["node"] == "front_desk"
    assert [(s["target"], s["reason"]) for s in record.flow["path"]] == [
        ("greeting", "start"),
        ("hours", "keyword"),
        ("front_desk", "keyword"),
    ]
    hooked = [turn for name, turn in call.hooks if name == "turn_completed"]
    assert [t.flow["node"] for t in hooked] == ["greeting", "hours", "front_desk"]


def name_then_goodbye() -> Any:
    return parse_flow(
        {
            "start": "ask",
            "first_speaker": "caller",
            "instructions": "You are a polite receptionist.",
            "nodes": [
                {
                    "id": "ask",
                    "prompt": "Ask for the caller's name.",
                    "extract": [
                        {
                            "name": "name",
                            "mandatory": True,
                            "reprompt": "Sorry, your name?",
                        }
                    ],
                    "transitions": [{"to": "bye", "always": True}],
                },
                {"id": "bye", "type": "ending", "script": "Goodbye, {{name}}."},
            ],
        }
    )


async def test_a_prompt_node_answers_and_decides_in_one_request_then_the_call_ends() -> None:
    call = make_call(
        utterances=["it's maria"],
        replies=['Thank you, Maria. [[save_variables {"name": "Maria"}]]'],
        responder=runtime(name_then_goodbye()),
    )

    async def caller(c: Call) -> None:
        await c.say(600, then_silence_ms=400)
        await until(lambda: c.hangups)

    record = await run_call(call, caller)
    assert len(call.llm.requests) == 1  # the answer and the decision: one request
    assert call.llm.tools_offered == [["save_variables"]]
    system = call.llm.requests[0][0].content
    assert "You are a polite receptionist." in system and "Ask for the caller's name." in system
    turn = record.turns[0]
    assert turn.heard_text == "Thank you, Maria. Goodbye, Maria."
    assert turn.status == "played" and record.end_reason == "agent_hangup"
    assert record.flow is not None and record.flow["variables"]["name"] == "Maria"
    # The flow's tools are control, not conversation: nothing of them in the history.
    assert all(not m.tool_calls for m in call.session.history.turns)


async def test_a_missing_mandatory_value_is_asked_for_from_the_template() -> None:
    call = make_call(
        utterances=["hmm", "maria"],
        replies=["", 'Thanks. [[save_variables {"name": "Maria"}]]'],
        responder=runtime(name_then_goodbye()),
    )

    async def caller(c: Call) -> None:
        await c.say(600, then_silence_ms=400)
        await until(lambda: len(c.session.record.turns) == 1)
        await c.say(600, then_silence_ms=400)
        await until(lambda: c.hangups)

    record = await run_call(call, caller)
    assert [t.heard_text for t in record.turns] == [
        "Sorry, your name?",
        "Thanks. Goodbye, Maria.",
    ]
    assert len(call.llm.requests) == 2  # one per turn; the reprompt cost none


async def test_a_barge_in_during_a_script_keeps_only_the_words_heard() -> None:
    call = make_call(
        utterances=["hours please", "yes"],
        responder=runtime(),
        agent={"transfer_allowlist": [DESK]},
        turn={"min_interruption_words": 1},
    )

    async def caller(c: Call) -> None:
        await until(lambda: len(c.session.record.turns) == 1)
        await c.say(600, then_silence_ms=400)
        await until(
            lambda: (
                c.session.replies.current is not None and c.session.replies.current.started_playing
            )
        )
        await c.quiet(1500)  # part of the hours script plays
        await c.say(400, then_silence_ms=400)  # "yes": interrupts, and books
        await until(lambda: len(c.session.record.turns) == 3)
        c.media.hang_up()

    record: CallRecord = await run_call(call, caller)
    hours = example_flow().node("hours").script or ""
    interrupted = record.turns[1]
    assert interrupted.interrupted and interrupted.heard_text
    assert hours.startswith(interrupted.heard_text) and interrupted.heard_text != hours
    assert record.flow is not None
    assert [s["target"] for s in record.flow["path"]][-1] == "ask_name"


def booking_question(answer_while_deciding: bool = True) -> Any:
    return parse_flow(
        {
            "start": "q",
            "answer_while_deciding": answer_while_deciding,
            "nodes": [
                {
                    "id": "q",
                    "script": "Shall I book it?",
                    "transitions": [
                        {"to": "yes", "when": "the caller agrees"},
                        {"to": "no", "when": "the caller declines"},
                    ],
                },
                {"id": "yes", "type": "ending", "script": "Booked. Bye."},
                {"id": "no", "type": "ending", "script": "Fine. Bye."},
            ],
        }
    )


async def one_turn(call: Call) -> CallRecord:
    async def caller(c: Call) -> None:
        await until(lambda: len(c.session.record.turns) == 1)  # the question played
        await c.say(800, then_silence_ms=600)
        await until(lambda: len(c.session.record.turns) == 2)
        await until(lambda: c.session.record.turns[1].status != "pending")
        c.media.hang_up()

    return await run_call(call, caller)


async def test_an_answer_written_during_the_decision_is_never_heard_when_a_transition_wins() -> (
    None
):
    call = make_call(
        utterances=["sure thing"],
        replies=["[[go_to_yes]]", "We are on Main Street, by the park."],
        responder=runtime(booking_question()),
    )
    record = await one_turn(call)
    assert len(call.llm.requests) == 2  # the decision and the answer, side by side
    assert call.llm.cancelled == 1  # the answer: stopped once the decision came
    spoken = " ".join(u.text for u in call.tts.all_utterances)
    assert "Main Street" not in spoken and record.turns[1].heard_text == "Booked. Bye."
    assert all("Main Street" not in m.content for m in call.session.history.messages())


@pytest.mark.parametrize("alongside", [True, False])
async def test_off_script_words_are_answered_a_decision_sooner(alongside: bool) -> None:
    call = make_call(
        utterances=["where are you"],
        replies=["none of them", "We are on Main Street. Shall I book it?"],
        llm={"first_token_ms": 250, "tokens_per_second": 40},
        responder=runtime(booking_question(alongside)),
    )
    record = await one_turn(call)
    turn = record.turns[1]
    assert turn.heard_text == "We are on Main Street. Shall I book it?"
    assert turn.stt_end_of_turn is not None and turn.first_segment is not None
    wait = turn.first_segment - turn.stt_end_of_turn
    # The decision ends 300 ms after it starts (first token, two more); the answer's
    # first clause is written 400 ms after it starts. Side by side, the caller waits
    # for the longer of the two; one after the other, for both.
    if alongside:
        assert wait == pytest.approx(0.4, abs=0.03)
    else:
        assert wait == pytest.approx(0.7, abs=0.03)


class SlowWebhooks:
    """A webhook that takes ``seconds``; records when it started."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: list[float] = []

    async def run(self, node: Any, variables: Any, *, allow_private: bool, call_id: str) -> Any:
        import anyio

        self.started.append(anyio.current_time())
        await anyio.sleep(self.seconds)
        return WebhookResult(ok=True, saved={"ref": "B-7"})

    async def aclose(self) -> None:
        pass


async def test_a_webhook_starts_with_the_decision_while_the_answer_still_plays() -> None:
    flow = booking_flow()
    hooks = SlowWebhooks(1.0)
    call = make_call(
        utterances=["it's maria"],
        replies=[
            "Thank you, Maria, let me put that booking in for you right now. "
            '[[save_variables {"name": "Maria"}]] [[go_to_book]]'
        ],
        responder=FlowRuntime(flow, webhooks=hooks),  # type: ignore[arg-type]
    )

    async def caller(c: Call) -> None:
        await c.say(600, then_silence_ms=400)
        await until(lambda: c.hangups)

    record = await run_call(call, caller)
    turn = record.turns[0]
    assert turn.heard_text.endswith("Booked, reference B-7.")
    # The webhook started while the answer was playing, and the answer kept playing
    # through it: no gap in the frames sent while the request was out.
    (started,) = hooks.started
    sent = call.media.sent_frames
    assert sent[0][0] < started < sent[-1][0]
    during = [(t, audio) for t, audio in sent if started <= t <= started + hooks.seconds]
    # Each message went out no later than the audio of the one before had played.
    lateness = [b - a - len(audio) / 8000 for (a, audio), (b, _) in itertools.pairwise(during)]
    assert during and max(lateness) <= 0.001


async def test_a_caller_turn_during_a_transfer_reply_neither_cuts_it_nor_stops_the_transfer() -> (
    None
):
    transfers: list[str] = []

    async def transfer(to: str) -> None:
        transfers.append(to)

    call = make_call(
        utterances=["can I speak to a person", "hello are you there still"],
        agent={"transfer_allowlist": [DESK]},
        transfer=transfer,
        responder=runtime(),
    )

    async def caller(c: Call) -> None:
        await until(lambda: len(c.session.record.turns) == 1)  # the greeting played
        await c.say(800, then_silence_ms=600)
        await until(
            lambda: (
                c.session.replies.current is not None and c.session.replies.current.started_playing
            )
        )
        await c.say(900, then_silence_ms=600)  # a whole turn over the transfer script
        await until(lambda: transfers)

    record = await run_call(call, caller)
    assert transfers == [DESK] and record.end_reason == "transferred"
    closing = record.turns[-1]
    assert closing.heard_text == "Of course, putting you through now."
    assert not closing.interrupted and call.media.clears == []
    assert [e.text for e in record.transcript if e.role == "user"][-1] == (
        "hello are you there still"
    )
