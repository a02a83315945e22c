"""The voicekit server on loopback, called by the phone simulator, every provider emulated."""

from __future__ import annotations

import gc
import json
import time
import weakref
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.server_helpers import ENDPOINT_MS, Rig, rig
from voicekit.audio import ULAW_8K
from voicekit.testing import voice

pytestmark = [pytest.mark.anyio, pytest.mark.waits]


async def until(predicate, limit_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(limit_s):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.02)


def turns_played(r: Rig, call: Any) -> int:
    """Turns the call's session has recorded: a reply counts once it has fully played."""
    session = r.calls.active.get(call.call_id)
    return len(session.record.turns) if session is not None else -1


async def test_healthz(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        async with httpx.AsyncClient() as client:
            reply = await client.get(f"{r.server.http_url}/healthz")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok", "active_calls": 0, "calls_total": 0}


async def test_two_turn_call(tmp_path: Path) -> None:
    async with rig(
        tmp_path,
        utterances=["hello there", "what are your hours"],
        replies=["Hi, how can I help?", "Nine to five."],
    ) as r:
        async with r.phone.call() as call:
            first = await call.say(voice(700, ULAW_8K))
            await until(lambda: turns_played(r, call) == 1)
            second = await call.say(voice(900, ULAW_8K))
            await until(lambda: turns_played(r, call) == 2)
        await until(lambda: not r.calls.active)
    answer = r.telnyx.commands[0]
    assert answer.action == "answer" and answer.body["stream_bidirectional_codec"] == "PCMU"
    assert answer.body["stream_track"] == "inbound_track"
    assert answer.body["stream_bidirectional_mode"] == "rtp"
    assert answer.body["stream_url"].startswith("ws://127.0.0.1:")
    record = r.calls.records[-1]
    assert [t.user_text for t in record.turns] == ["hello there", "what are your hours"]
    assert [t.heard_text for t in record.turns] == ["Hi, how can I help?", "Nine to five."]
    assert first.latency_ms is not None and second.latency_ms is not None
    # The caller hears the answer only after the emulated Soniox endpoint (ENDPOINT_MS of
    # silence) and the LLM's first token (50 ms): causes come before effects.
    assert first.latency_ms >= ENDPOINT_MS + 50 and second.latency_ms >= ENDPOINT_MS + 50
    # The caller got exactly the agent's audio, framed in 20 ms.
    assert bytes(call.agent_audio).startswith(bytes(next(iter(r.elevenlabs.audio_sent.values()))))
    path = tmp_path / "records" / f"{call.call_id.replace('/', '_')}.json"
    await until(path.exists)  # written in a worker thread once the call is over
    saved = json.loads(path.read_text())
    assert saved["end_reason"].startswith("hangup") or saved["end_reason"] == "caller_hangup"


async def test_graceful_shutdown_refuses_new_calls_then_ends_active_ones(tmp_path: Path) -> None:
    long = "Here is a very long answer that will not be finished before we close. " * 10
    async with rig(
        tmp_path,
        utterances=["tell me a story"],
        replies=[long],
        agent={"farewell": "We are closing now, goodbye."},
    ) as r:
        async with r.phone.call() as call:
            await call.say(voice(600, ULAW_8K))
            await until(lambda: len(call.agent_audio) > 4000)
            async with anyio.create_task_group() as tg:
                tg.start_soon(r.calls.drain, 1.0)
                await until(lambda: r.calls.draining)
                async with httpx.AsyncClient() as client:
                    health = (await client.get(f"{r.server.http_url}/healthz")).json()
                assert health["status"] == "draining" and health["active_calls"] == 1
                r.telnyx.register_call("v3:late")
                await r.phone.webhook(
                    "call.initiated",
                    {
                        "call_control_id": "v3:late",
                        "direction": "incoming",
                        "from": "+15550003333",
                        "to": "+15550002222",
                    },
                )
                reject = await r.telnyx.wait_for("reject", "v3:late")
                assert reject.body["cause"] == "USER_BUSY"
                # The active call goes on in its grace period: no farewell, no hang-up yet.
                assert call.call_id in r.calls.active and "hangup" not in r.telnyx.actions()
                await r.telnyx.wait_for("hangup", call.call_id, limit_s=20)
        await until(lambda: r.calls.records)
    record = r.calls.records[-1]
    assert record.end_reason == "shutdown"
    assert record.transcript[-1].text == "We are closing now, goodbye."
    assert (tmp_path / "records" / f"{call.call_id.replace('/', '_')}.json").exists()


async def test_outbound_call_runs_the_agent_when_answered(tmp_path: Path) -> None:
    async with rig(
        tmp_path,
        utterances=["yes it is"],
        replies=["Great, see you then."],
        agent={
            "first_speaker": "agent",
            "greeting": "Hi, this is Acme confirming your appointment.",
        },
    ) as r:
        call_id = await r.telephony.dial("+15557654321", host=r.calls)
        dial = r.telnyx.commands[0]
        assert dial.action == "dial" and dial.call_control_id == call_id
        assert dial.body["to"] == "+15557654321" and dial.body["from"] == "+15550009999"
        assert dial.body["connection_id"] == "conn-1"
        assert dial.body["answering_machine_detection"] == "detect"
        assert dial.body["stream_bidirectional_codec"] == "PCMU"
        assert dial.body["webhook_url"].endswith("/telephony/telnyx/webhook")
        async with await r.phone.answer() as callee:
            await until(lambda: turns_played(r, callee) == 1)  # the greeting has played
            await callee.say(voice(600, ULAW_8K))
            await until(lambda: turns_played(r, callee) == 2)
        await until(lambda: r.calls.records)
    record = r.calls.records[-1]
    assert record.call.direction == "outbound" and record.call.call_id == call_id
    assert [t.heard_text for t in record.turns] == [
        "Hi, this is Acme confirming your appointment.",
        "Great, see you then.",
    ]


async def test_a_broken_call_does_not_touch_another(tmp_path: Path) -> None:
    from voicekit.audio import PCM_16K, write_wav

    wav = tmp_path / "caller.wav"
    write_wav(wav, PCM_16K, voice(700, PCM_16K))  # a 16 kHz PCM recording, as a user has
    async with rig(tmp_path, echo=True) as r:
        broken_call, healthy_call = r.phone.call(), r.phone.call()
        r.soniox.by_call = {
            broken_call.call_id: ["first words"],
            healthy_call.call_id: ["hello there", "and again"],
        }
        async with healthy_call as healthy:
            async with broken_call as broken:
                await broken.say(voice(600, ULAW_8K))
                await until(lambda: len(broken.agent_audio) > 1600)
                broken.ws.transport.abort()  # the line drops: no stop frame, no close
                first = await healthy.say_wav(wav)
                await until(lambda: first.agent_started_at is not None)
            await until(lambda: turns_played(r, healthy) == 1)
            await healthy.say(voice(600, ULAW_8K))
            await until(lambda: turns_played(r, healthy) == 2)
        await until(lambda: len(r.calls.records) == 2)
    by_id = {rec.call.call_id: rec for rec in r.calls.records}
    assert [t.heard_text for t in by_id[healthy.call_id].turns] == [
        "You said: hello there.",
        "You said: and again.",
    ]
    assert by_id[broken.call_id].turns and by_id[broken.call_id].ended_at is not None


async def test_an_ended_call_is_freed_without_the_garbage_collector(tmp_path: Path) -> None:
    """Reference counting alone frees a call that ended mid-reply: nothing of it waits for a
    full collection, which would stall every other call (voicekit.tasks)."""
    long = "Let me read you the whole policy, section by section. " * 8
    async with rig(tmp_path, utterances=["read the policy"], replies=[long]) as r:
        gc.collect()
        gc.disable()
        try:
            async with r.phone.call() as call:
                await call.say(voice(600, ULAW_8K))
                await until(lambda: len(call.agent_audio) > 8000)
                session = next(iter(r.calls.active.values()))
                assert session._pipeline is not None
                parts = {
                    "session": weakref.ref(session),
                    "media": weakref.ref(session.media),
                    "playout": weakref.ref(session.playout),
                    "pipeline": weakref.ref(session._pipeline),
                    "tts_session": weakref.ref(session._pipeline.tts_session),
                }
                del session
            await until(lambda: not r.calls.active and r.calls.records)
            await anyio.sleep(0.2)  # let the route and provider tasks finish
            assert [name for name, ref in parts.items() if ref() is not None] == []
        finally:
            gc.enable()


async def test_a_drain_waits_for_the_last_records_to_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shutting down right after a call ended still leaves its record on disk: the record
    is written in a worker thread, and the server is not idle until it is."""
    from voicekit.server import CallManager

    write_file = CallManager._write_file

    def slow_write(self: CallManager, record: Any) -> None:
        time.sleep(0.5)  # a slow disk
        write_file(self, record)

    monkeypatch.setattr(CallManager, "_write_file", slow_write)
    async with rig(tmp_path) as r:
        async with r.phone.call() as call:
            await until(lambda: r.calls.active)
        await until(lambda: r.calls.records)
        await r.calls.drain(0.0)
        assert (tmp_path / "records" / f"{call.call_id}.json").exists()
