"""Tools in the call, on the virtual clock: a tool mid-reply with filler and continuation,
end_call, transfer_call and its allow-list, barge-in during a tool, DTMF."""

from __future__ import annotations

from typing import Literal

import anyio
import pytest

from tests.session_helpers import Call, anyio_backend, make_call, run_call, until  # noqa: F401
from voicekit import tool
from voicekit.llm import Message
from voicekit.session.actions import CallActions, PendingAction
from voicekit.telephony import CallInfo
from voicekit.tools import FunctionTool, ToolContext

pytestmark = pytest.mark.anyio


async def test_a_slow_tool_mid_reply_gets_one_filler_and_the_reply_goes_on() -> None:
    done: list[str] = []

    @tool(description="Opening hours on a day.")
    async def opening_hours(day: str) -> dict[str, str]:
        await anyio.sleep(4.0)  # slower than filler_after_s
        done.append(day)
        return {"day": day, "hours": "9 to 5"}

    call = make_call(
        utterances=["when do you open on monday"],
        replies=['Let me check. [[opening_hours {"day": "monday"}]]', "We open at nine."],
        agent={"filler": "One moment, please.", "filler_after_s": 1.5},
        tools=[opening_hours],
    )

    async def caller(c: Call) -> None:
        await c.say(600, then_silence_ms=400)
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    record = await run_call(call, caller)
    turn = record.turns[0]
    assert turn.heard_text == "Let me check. One moment, please. We open at nine."
    assert done == ["monday"] and [t.name for t in turn.tools] == ["opening_hours"]
    assert turn.tools[0].error is None and turn.tools[0].ms >= 4000
    assert len(call.tts.all_utterances) == 1  # one utterance: spoken on, not restarted
    assert call.llm.tools_offered[0] == ["opening_hours"]
    second = call.llm.requests[1]  # the continuation: the calls and their result
    assistant, result = second[-2], second[-1]
    assert assistant.role == "assistant" and assistant.tool_calls[0].name == "opening_hours"
    assert assistant.content == "Let me check."
    assert result == Message(
        "tool", '{"day": "monday", "hours": "9 to 5"}', tool_call_id=assistant.tool_calls[0].id
    )


async def test_a_fast_tool_needs_no_filler_and_a_failing_one_tells_the_model() -> None:
    @tool(description="Always fails.")
    async def broken() -> str:
        raise RuntimeError("database down")

    call = make_call(
        utterances=["check my booking"],
        replies=["[[broken]]", "Sorry, I cannot see bookings right now."],
        tools=[broken],
    )

    async def caller(c: Call) -> None:
        await c.say(600, then_silence_ms=400)
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert record.turns[0].heard_text == "Sorry, I cannot see bookings right now."
    tool_message = call.llm.requests[1][-1]
    assert tool_message.role == "tool"
    assert tool_message.content == "Error: RuntimeError: database down"
    assert record.turns[0].tools[0].error == "RuntimeError: database down"


async def test_end_call_hangs_up_after_the_goodbye_has_played() -> None:
    call = make_call(
        utterances=["that is all thanks"],
        replies=["Thanks for calling, goodbye! [[end_call]]", ""],
        agent={"builtin_tools": ["end_call"]},
    )

    async def caller(c: Call) -> None:
        await c.say(600, then_silence_ms=400)
        await until(lambda: c.hangups)

    record = await run_call(call, caller)
    assert record.end_reason == "agent_hangup"
    assert record.turns[0].heard_text == "Thanks for calling, goodbye!"
    assert record.turns[0].status == "played"
    # The hang-up came after the goodbye's last audio played, not when it was sent.
    assert call.hangups[0] >= call.session.record.turns[0].first_mark_reached  # type: ignore[operator]
    assert call.llm.tools_offered[0] == ["end_call"]


@pytest.mark.parametrize("allowed", [True, False])
async def test_transfer_call_only_to_the_allowlist(allowed: bool) -> None:
    transfers: list[str] = []

    async def transfer(to: str) -> None:
        transfers.append(to)

    call = make_call(
        utterances=["let me talk to a person"],
        replies=[
            'Putting you through. [[transfer_call {"destination": "+1 (555) 123-0000"}]]',
            "One moment.",
        ],
        agent={
            "builtin_tools": ["transfer_call"],
            "transfer_allowlist": ["+15551230000"] if allowed else ["+15559999999"],
        },
        transfer=transfer,
    )

    async def caller(c: Call) -> None:
        await c.say(600, then_silence_ms=400)
        await until(lambda: c.session.record.turns)
        await anyio.sleep(2)
        c.media.hang_up()

    record = await run_call(call, caller)
    result = call.llm.requests[1][-1].content
    if allowed:
        # The configured entry is dialled, never the model's spelling of it.
        assert transfers == ["+15551230000"] and record.end_reason == "transferred"
        assert result.startswith("The caller will be transferred")
    else:
        assert transfers == [] and record.end_reason != "transferred"
        assert result == "Refused: +1 (555) 123-0000 is not a number this agent may transfer to."


async def test_a_tool_running_at_barge_in_finishes_and_the_model_learns_its_result() -> None:
    booked: list[str] = []

    @tool(description="Book a table.")
    async def book(time: str) -> str:
        await anyio.sleep(3.0)
        booked.append(time)
        return f"booked for {time}"

    call = make_call(
        utterances=["book a table at seven", "actually wait"],
        replies=[
            'I am booking that for you now, please hold on. [[book {"time": "19:00"}]]',
            "Done, you are booked.",
            "Sure, what would you like to change?",
        ],
        agent={"filler": ""},
        tools=[book],
    )

    async def caller(c: Call) -> None:
        await c.say(600, then_silence_ms=400)
        await until(lambda: c.tts.all_utterances and c.media.played_ms() > 1500)
        await c.say(700, then_silence_ms=400)  # barges in while the tool runs
        await until(lambda: len(c.session.record.turns) >= 2)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert record.turns[0].interrupted and booked == ["19:00"]
    last_request = call.llm.requests[-1]  # the reply to "actually wait"
    tool_results = [m for m in last_request if m.role == "tool"]
    assert [m.content for m in tool_results] == ["booked for 19:00"]
    assert last_request[-1] == Message("user", "actually wait")


async def test_keys_the_caller_presses_reach_the_model_as_one_message() -> None:
    call = make_call(replies=["You chose option one, two."])

    async def caller(c: Call) -> None:
        await c.quiet(500)
        for digit in "12#":
            c.media.press(digit)
            await anyio.sleep(0.3)
        await until(lambda: c.session.record.turns)
        c.media.press("9")  # no '#': sent after the gap
        await until(lambda: len(c.llm.requests) >= 2)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert record.turns[0].user_text == "[caller pressed 12#]"
    assert call.llm.requests[0][-1] == Message("user", "[caller pressed 12#]")
    assert call.llm.requests[1][-1] == Message("user", "[caller pressed 9]")


def test_tool_schemas_come_from_the_signature() -> None:
    @tool(description="Book.")
    async def book(
        day: Literal["mon", "tue"], people: int, note: str = "", context: ToolContext | None = None
    ) -> str:
        return "ok"

    assert book.parameters == {
        "type": "object",
        "properties": {
            "day": {"type": "string", "enum": ["mon", "tue"]},
            "people": {"type": "integer"},
            "note": {"type": "string"},
        },
        "required": ["day", "people"],
    }
    assert book.wants_context
    with pytest.raises(TypeError, match="async function"):
        FunctionTool("x", "y", lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="letters, digits"):

        @tool(name="no spaces allowed", description="d")
        async def bad() -> str:
            return ""


async def test_transfer_call_is_not_offered_when_the_line_cannot_transfer() -> None:
    call = make_call(
        utterances=["let me talk to a person"],
        replies=["I cannot put you through, sorry."],
        agent={"builtin_tools": ["end_call", "transfer_call"], "transfer_allowlist": ["+1555"]},
    )

    async def caller(c: Call) -> None:
        await c.say(600, then_silence_ms=400)
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    await run_call(call, caller)
    assert call.llm.tools_offered[0] == ["end_call"]


async def test_a_failed_transfer_is_apologised_for_and_the_call_goes_on() -> None:
    async def transfer(to: str) -> None:
        raise RuntimeError("the carrier refused")

    call = make_call(
        utterances=["sales please"],
        replies=['Putting you through. [[transfer_call {"destination": "+15551230000"}]]', ""],
        agent={
            "builtin_tools": ["transfer_call"],
            "transfer_allowlist": ["+15551230000"],
            "apology": "Sorry, that did not work.",
        },
        transfer=transfer,
    )

    async def caller(c: Call) -> None:
        await c.say(600, then_silence_ms=400)
        await until(lambda: len(c.session.record.turns) >= 2)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert record.turns[1].heard_text == "Sorry, that did not work."
    assert record.end_reason == "caller_hangup"


def test_two_tools_with_one_name_are_refused() -> None:
    @tool(name="end_call", description="Mine.")
    async def mine() -> str:
        return ""

    with pytest.raises(ValueError, match="two tools are named 'end_call'"):
        make_call(agent={"builtin_tools": ["end_call"]}, tools=[mine])


async def test_the_models_arguments_are_checked_against_the_signature() -> None:
    got: list[tuple[str, int]] = []

    @tool(description="Book.")
    async def book(day: Literal["mon", "tue"], people: int, note: str = "") -> str:
        got.append((day, people))
        return "ok"

    context = CallActions(CallInfo(call_id="c"), [])
    assert await book.run({"day": "mon", "people": "4"}, context) == "ok"  # "4": plainly 4
    assert got == [("mon", 4)]
    for wrong, why in [
        ({"day": "mon", "people": "four"}, "people: Input should be a valid integer"),
        ({"day": "sun", "people": 2}, "day: Input should be 'mon' or 'tue'"),
        ({"people": 2}, "day: Field required"),
        ({"day": "mon", "people": 2, "context": "x"}, "context: Extra inputs are not permitted"),
    ]:
        with pytest.raises(ValueError, match=f"invalid arguments for book: .*{why}"):
            await book.run(wrong, context)
    assert len(got) == 1


async def test_a_model_cannot_make_a_tool_act_without_bound() -> None:
    """At most 10 tool calls run per reply, the same call runs once, and after 5 rounds of
    tools the model's further calls are answered without running."""
    sent: list[str] = []

    @tool(description="Send a text message.")
    async def send_sms(to: str) -> str:
        sent.append(to)
        return f"sent to {to}"

    many = " ".join(f'[[send_sms {{"to": "+1555000{n:04d}"}}]]' for n in range(12))
    again = '[[send_sms {"to": "+15550000000"}]]'  # already sent in round one
    call = make_call(
        utterances=["text everyone"],
        replies=[f"Sending. {many}", *[again] * 5, "Done."],
        tools=[send_sms],
        agent={"filler": ""},
    )

    async def caller(c: Call) -> None:
        await c.say(600, then_silence_ms=400)
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert len(sent) == 10 and len(set(sent)) == 10
    assert len(call.llm.requests) == 6  # the first and five more rounds, no seventh
    results = [m.content for m in call.llm.requests[-1] if m.role == "tool"]
    assert results.count("Error: not run: a reply may call 10 tools") == 2
    assert results.count("sent to +15550000000") == 5  # the repeats: the first result
    assert len(record.turns[0].tools) == 10


def test_sip_destinations_keep_their_case_sensitive_user_part() -> None:
    actions = CallActions(CallInfo(call_id="c"), ["sip:Desk@PBX.example.com", "+15551230000"])
    assert actions.may_transfer_to("SIP:Desk@pbx.EXAMPLE.com")
    assert not actions.may_transfer_to("sip:desk@pbx.example.com")  # another user
    for spelling in ("+1 (555) 123-0000", "+1555\u2003123\xa00000\n", "+1.555.123.0000"):
        actions.transfer(spelling)
        assert actions.take() == PendingAction("transfer", "+15551230000")
    for refused in ("tel:+15551230000", "0015551230000", "+15551230000;ext=1", "+\uff115551230000"):
        assert not actions.may_transfer_to(refused), refused


async def test_a_caller_cannot_flood_the_model_with_keys() -> None:
    call = make_call(replies=["Okay."] * 100, agent={"dtmf_gap_s": 1.0})

    async def caller(c: Call) -> None:
        await c.quiet(500)
        for _ in range(40):  # a long run of digits: one message, cut at 32
            c.media.press("7")
        await until(lambda: c.session.record.turns)
        for _ in range(100):  # '#' ten times a second for ten seconds
            c.media.press("#")
            await anyio.sleep(0.1)
        await anyio.sleep(2)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert record.turns[0].user_text == f"[caller pressed {'7' * 32}]"
    keypad_turns = [t for t in record.turns if (t.user_text or "").startswith("[caller")]
    assert 2 <= len(keypad_turns) <= 13  # at most one a second, not a hundred
    assert sum((t.user_text or "").count("#") for t in keypad_turns) == 100  # none lost
