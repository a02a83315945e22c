"""The server's behaviour through its routes, in memory on a virtual clock (memory_rig):
barge-in, hang-up, malformed frames, media tokens, webhooks, concurrent calls. The same
app over real sockets: test_server.py's smoke tests and test_serve_process.py."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from websockets.exceptions import ConnectionClosed

from tests.memory_rig import CHAR_MS, PUBLIC_URL, MemoryRig, anyio_backend, memory_rig, until
from voicekit.audio import ULAW_8K
from voicekit.testing import synthesize, voice
from voicekit.testing.asgi import open_asgi_websocket
from voicekit.testing.phone import PhoneSimulator

__all__ = ["anyio_backend"]

pytestmark = pytest.mark.anyio


def spoken(r: MemoryRig, text: str) -> bytes:
    """The audio the fake TTS made for the reply ``text``, piece by piece as it came."""
    utterance = next(u for u in r.tts.all_utterances if u.text.strip() == text)
    return b"".join(synthesize(piece, ULAW_8K, CHAR_MS) for piece in utterance.texts)


async def test_a_call_in_memory_converses_turn_by_turn(tmp_path: Path) -> None:
    async with memory_rig(
        tmp_path,
        utterances=["hello there", "what are your hours"],
        replies=["Hi, how can I help?", "Nine to five."],
    ) as r:
        async with r.phone.call() as call:
            first = await call.say(voice(700, ULAW_8K))
            await until(lambda: r.turns_played(call) == 1)
            second = await call.say(voice(900, ULAW_8K))
            await until(lambda: r.turns_played(call) == 2)
        await until(lambda: r.calls.records)
    answer = r.telnyx.commands[0]
    assert answer.action == "answer" and answer.body["stream_url"].startswith("wss://voice.")
    record = r.calls.records[-1]
    assert [t.user_text for t in record.turns] == ["hello there", "what are your hours"]
    assert [t.heard_text for t in record.turns] == ["Hi, how can I help?", "Nine to five."]
    # Causes before effects, on the virtual clock: the STT's endpoint (300 ms of silence)
    # and the LLM's first token (50 ms) come before the caller hears anything.
    for report in (first, second):
        assert report.latency_ms is not None and 350 <= report.latency_ms < 1000
    assert bytes(call.agent_audio) == spoken(r, "Hi, how can I help?") + spoken(r, "Nine to five.")


async def test_barge_in_stops_the_agent_and_sends_clear(tmp_path: Path) -> None:
    long = "This is a long answer that keeps going for quite a while, " * 6
    async with memory_rig(
        tmp_path, utterances=["tell me everything", "stop right there"], replies=[long, "Okay."]
    ) as r:
        async with r.phone.call() as call:
            await call.say(voice(700, ULAW_8K))
            await until(lambda: len(call.agent_audio) > 8000 * 1.5)  # 1.5 s of agent audio
            await call.say(voice(800, ULAW_8K))
            await until(lambda: call.clears)
            await until(lambda: r.turns_played(call) == 2)  # "Okay." played after the clear
        await until(lambda: r.calls.records)
    record = r.calls.records[-1]
    first = record.turns[0]
    assert first.interrupted and first.heard_text and long.startswith(first.heard_text)
    assert len(first.heard_text) < len(long) / 2
    assistant = [m for m in r.llm.requests[1] if m.role == "assistant"]
    assert assistant[0].content == first.heard_text


@pytest.mark.parametrize("problem", ["bad_signature", "stale", "future", "missing_headers"])
async def test_unverified_webhooks_are_rejected_and_ignored(tmp_path: Path, problem: str) -> None:
    async with memory_rig(tmp_path) as r:
        payload = {
            "call_control_id": "v3:evil",
            "direction": "incoming",
            "from": "+1555",
            "to": "+1666",
        }
        now = int(time.time())
        if problem == "bad_signature":
            async with PhoneSimulator(PUBLIC_URL, r.telnyx, app=r.app) as other:  # another key
                reply = await other.webhook("call.initiated", payload, event_id="e1")
        elif problem == "missing_headers":
            reply = await r.phone.webhook("call.initiated", payload, headers={"x": "y"})
        else:
            skew = -400 if problem == "stale" else 400
            reply = await r.phone.webhook("call.initiated", payload, timestamp=now + skew)
        assert reply.status_code == 401
        # A signed probe sent after it is processed: had the rejected one been acted on,
        # its answer would already be recorded before the probe's.
        r.telnyx.register_call("v3:probe")
        probe = {"call_control_id": "v3:probe", "direction": "incoming"}
        assert (await r.phone.webhook("call.initiated", probe)).status_code == 200
        await r.telnyx.wait_for("answer", "v3:probe")
        assert r.telnyx.actions() == ["answer"]  # the probe's only: nothing else processed
        assert r.telephony.rejected_webhooks == 1
        await r.phone.webhook("call.hangup", {"call_control_id": "v3:probe"})


async def test_redelivered_event_is_handled_once_and_unknown_events_ignored(tmp_path: Path) -> None:
    async with memory_rig(tmp_path) as r:
        r.telnyx.register_call("v3:once")
        payload = {
            "call_control_id": "v3:once",
            "direction": "incoming",
            "from": "+1555",
            "to": "+1666",
        }
        for _ in range(2):
            reply = await r.phone.webhook("call.initiated", payload, event_id="same-id")
            assert reply.status_code == 200
        unknown = await r.phone.webhook("call.conversation.ended", {"call_control_id": "x"})
        assert unknown.status_code == 200
        r.telnyx.register_call("v3:probe")  # commands run in order: after the probe's, all ran
        probe = {"call_control_id": "v3:probe", "direction": "incoming"}
        await r.phone.webhook("call.initiated", probe)
        await r.telnyx.wait_for("answer", "v3:probe")
        assert r.telnyx.actions("v3:once") == ["answer"]
        assert r.telnyx.actions() == ["answer", "answer"]
        for call_id in ("v3:once", "v3:probe"):  # neither will connect media: end them
            await r.phone.webhook("call.hangup", {"call_control_id": call_id})


@pytest.mark.parametrize("token", ["missing", "expired", "forged"])
async def test_media_stream_without_a_valid_token_is_closed(tmp_path: Path, token: str) -> None:
    async with memory_rig(tmp_path) as r:
        url = f"{PUBLIC_URL}/telephony/telnyx/media"
        headers = {}
        if token == "expired":  # for a call that is up: only its age refuses it
            assert r.calls.reserve_call("v3:x")
            expired = r.calls.tokens.issue("v3:x", now=time.time() - 3600)
            headers = {"x-telnyx-streaming-auth-token": expired}
        elif token == "forged":
            headers = {"x-telnyx-streaming-auth-token": "djM6eA.9999999999.forgedmac"}
        async with anyio.create_task_group() as tg:
            ws = await open_asgi_websocket(r.app, url, start_soon=tg.start_soon, headers=headers)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.send(json.dumps({"event": "connected", "version": "1.0.0"}))
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert r.calls.calls_total == 0
        if token == "expired":  # the same call's token, issued now, is admitted
            assert r.calls.admit_media(r.calls.issue_media_token("v3:x")) == "v3:x"
            r.calls.end_call("v3:x", "test over")


async def test_malformed_media_frames_are_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with memory_rig(tmp_path, utterances=["hello"], replies=["Hi there."]) as r:
        async with r.phone.call() as call:
            for bad in (
                "{not json",
                '{"event": "media", "media": {"payload": "***"}}',
                '{"event": "party"}',
                '{"event": "media"}',
                "x" * 60_000,  # under [server] max_message_bytes: read, then skipped
            ):
                await call.send_raw(bad)
            await call.say(voice(600, ULAW_8K))
            await until(lambda: r.turns_played(call) == 1)
        await until(lambda: r.calls.records)
    assert r.calls.records[-1].turns[0].heard_text == "Hi there."
    skipped = [rec.message for rec in caplog.records if "skipped a bad media frame" in rec.message]
    kinds = {m.split("skipped a bad media frame: ")[1].split(":")[0] for m in skipped}
    assert {"bad_json", "bad_base64", "unknown_event", "bad_media"} <= kinds


async def test_two_concurrent_calls_do_not_see_each_others_audio(tmp_path: Path) -> None:
    async with memory_rig(tmp_path, echo=True) as r:
        a_call, b_call = r.phone.call(), r.phone.call()
        r.stt.by_call = {a_call.call_id: ["apples and pears"], b_call.call_id: ["bananas only"]}
        async with a_call as a, b_call as b:
            async with anyio.create_task_group() as tg:
                tg.start_soon(a.say, voice(700, ULAW_8K))
                tg.start_soon(b.say, voice(600, ULAW_8K, freq=220))
            await until(lambda: r.turns_played(a) == 1 and r.turns_played(b) == 1)
        await until(lambda: len(r.calls.records) == 2)
    by_id = {rec.call.call_id: rec for rec in r.calls.records}
    assert by_id[a.call_id].turns[0].heard_text == "You said: apples and pears."
    assert by_id[b.call_id].turns[0].heard_text == "You said: bananas only."
    assert bytes(a.agent_audio) == spoken(r, "You said: apples and pears.")
    assert bytes(b.agent_audio) == spoken(r, "You said: bananas only.")


async def test_answering_machine_on_an_outbound_call_hangs_up(tmp_path: Path) -> None:
    async with memory_rig(tmp_path, agent={"first_speaker": "agent", "greeting": "Hello?"}) as r:
        call_id = await r.telephony.dial("+15557654321", host=r.calls)
        async with await r.phone.answer(machine=True):
            await r.telnyx.wait_for("hangup", call_id)
        await until(lambda: r.calls.records)
    assert r.calls.records[-1].end_reason == "voicemail"


async def test_keys_pressed_on_the_phone_reach_the_model(tmp_path: Path) -> None:
    async with memory_rig(tmp_path, replies=["You chose reservations."]) as r:
        async with r.phone.call() as call:
            await call.wait(0.3)
            await call.press("1#")
            await until(lambda: r.turns_played(call) == 1)
        await until(lambda: not r.calls.active)
    assert r.calls.records[-1].turns[0].user_text == "[caller pressed 1#]"


async def test_thousands_of_malformed_frames_leave_a_live_call_able_to_finish_its_turn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.malformed_frames import malformed_frames

    async with memory_rig(tmp_path, utterances=["hello"], replies=["Hi there."]) as r:
        async with r.phone.call() as call:
            await until(lambda: r.calls.active)
            media = r.calls.active[call.call_id].media
            for n, frame in enumerate(malformed_frames(3000)):
                await call.ws.send(frame)
                if n % 200 == 0:
                    await anyio.lowlevel.checkpoint()  # let the line clock keep its 20 ms beat
            await until(lambda: sum(media.bad_frames.values()) > 2500)  # type: ignore[attr-defined]
            await call.say(voice(600, ULAW_8K))
            await until(lambda: r.calls.active[call.call_id].record.turns)
        await until(lambda: r.calls.records)
    record = r.calls.records[-1]
    assert record.turns[0].heard_text == "Hi there." and record.turns[0].status == "played"
    assert not any(rec.levelno >= logging.ERROR for rec in caplog.records)
    skipped = [m for m in caplog.messages if "skipped a bad media frame" in m]
    assert len(skipped) < 20  # the first of each kind; the rest are counted, not logged
    assert any("bad media frames in all" in m for m in caplog.messages)


async def test_a_caller_who_hangs_up_mid_reply_is_recorded_with_only_what_played(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    long = "Let me read you the whole policy, section by section. " * 8
    async with memory_rig(tmp_path, utterances=["read the policy"], replies=[long]) as r:
        async with r.phone.call() as call:
            await call.say(voice(600, ULAW_8K))
            await until(lambda: len(call.marks_echoed) >= 3 and len(call.agent_audio) > 8000)
        await until(lambda: r.calls.records)
        played_s = len(call.agent_audio) / 8000  # what reached the phone, at most played
    turn = r.calls.records[-1].turns[0]
    assert turn.status == "hung_up" and not turn.interrupted
    assert turn.heard_text and long.startswith(turn.heard_text)
    # The fake voice speaks 60 ms a character: no more than what reached the phone.
    assert len(turn.heard_text) <= played_s / (CHAR_MS / 1000) < len(long) / 2
    assert r.calls.records[-1].transcript[-1].text == turn.heard_text  # the record on disk:
    # test_server.py (files are written in a worker thread, which a virtual clock outruns)
    assert r.llm.cancelled + r.llm.completed == 1
    # The hang-up closed the media route cleanly (a failed route task logs an error).
    assert not any(rec.levelno >= logging.ERROR for rec in caplog.records)
