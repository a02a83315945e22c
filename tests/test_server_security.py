"""The server as a hostile client meets it: replayed media tokens, forged Host headers,
calls over the limit, huge bodies, half-sent requests and odd tokens."""

from __future__ import annotations

import base64
import gc
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
import websockets
from voicekit_telnyx import TelnyxTelephony
from voicekit_telnyx.settings import TelnyxSettings

from tests.server_helpers import Rig, rig
from voicekit.audio import ULAW_8K
from voicekit.config import load_settings
from voicekit.errors import CallRefused, ConfigError
from voicekit.lograte import FoldedRecords
from voicekit.server import create_app
from voicekit.server._uvicorn import MAX_PIPELINED, UVICORN_CLIENT_WARNINGS
from voicekit.testing import FakeLLM, FakeSTT, FakeTTS, voice

pytestmark = pytest.mark.anyio


async def until(predicate: Any, limit_s: float = 15.0) -> None:
    with anyio.fail_after(limit_s):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.02)


async def refused_with(
    url: str, headers: dict[str, str] | None = None, call_id: str = "v3:any"
) -> int | None:
    """Connect, announce ``call_id`` as Telnyx does, and return the close code the server
    answered with (it must close at once, before sending any audio)."""
    start = {"call_control_id": call_id, "media_format": {"encoding": "PCMU"}}
    async with websockets.connect(url, additional_headers=headers or {}) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed, anyio.fail_after(3):
            await ws.send(json.dumps({"event": "connected", "version": "1.0.0"}))
            await ws.send(json.dumps({"event": "start", "start": start}))
            while True:
                message = json.loads(await ws.recv())
                assert message.get("event") != "media", "audio before the refusal"
    return closed.value.rcvd.code if closed.value.rcvd else None


def media_url(r: Rig) -> str:
    return f"{r.server.ws_url}/telephony/telnyx/media"


async def test_a_live_calls_token_admits_one_connection_and_none_after_the_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with rig(tmp_path, utterances=["hello"], replies=["Hi there."]) as r:
        async with r.phone.call() as call:
            token = (await r.telnyx.wait_for("answer", call.call_id)).body["stream_auth_token"]
            header = {"x-telnyx-streaming-auth-token": token}
            await until(lambda: r.calls.active)
            assert await refused_with(media_url(r), header, call.call_id) == 1008  # a 2nd socket
            assert r.calls.calls_total == 1 and list(r.calls.active) == [call.call_id]
            async with httpx.AsyncClient() as client:
                health = (await client.get(f"{r.server.http_url}/healthz")).json()
            assert health["active_calls"] == 1
            await call.say(voice(600, ULAW_8K))
            await until(lambda: r.calls.active[call.call_id].record.turns)  # reply played
        await until(lambda: r.calls.records)
        assert await refused_with(media_url(r), header, call.call_id) == 1008  # call is over
        assert r.calls.calls_total == 1
    path = tmp_path / "records" / f"{call.call_id}.json"
    await until(path.exists)  # written in a worker thread once the call is over
    saved = json.loads(path.read_text())
    assert saved["turns"][0]["heard_text"] == "Hi there."  # the real call's record survived
    refusals = [m for m in caplog.messages if "refused a media stream" in m]
    assert refusals == [
        f"call={call.call_id}: refused a media stream: call already connected",
        f"call={call.call_id}: refused a media stream: call ended",
    ]
    assert all(rec.levelno == logging.WARNING for rec in caplog.records if "refused" in rec.msg)
    assert not any(token in m for m in caplog.messages)


@pytest.mark.parametrize("in_url", [False, True])
async def test_a_token_in_the_url_counts_only_when_configured(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, in_url: bool
) -> None:
    async with rig(tmp_path, telnyx_options={"media_token_in_url": in_url}) as r:
        r.telnyx.register_call("v3:url")
        payload = {"call_control_id": "v3:url", "direction": "incoming", "from": "+1555"}
        await r.phone.webhook("call.initiated", payload)
        token = (await r.telnyx.wait_for("answer", "v3:url")).body["stream_auth_token"]
        url = f"{media_url(r)}?token={token}"
        if in_url:
            async with websockets.connect(url) as ws:
                start = {"call_control_id": "v3:url", "media_format": {"encoding": "PCMU"}}
                await ws.send(json.dumps({"event": "start", "start": start}))
                await until(lambda: r.calls.active)
        else:
            assert await refused_with(url, call_id="v3:url") == 1008
            assert "refused a media stream: invalid or expired token" in caplog.text
            assert r.calls.calls_total == 0


async def test_a_token_for_a_call_that_hung_up_before_its_media_opens_nothing(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        r.telnyx.register_call("v3:gone")
        payload = {"call_control_id": "v3:gone", "direction": "incoming", "from": "+1555"}
        await r.phone.webhook("call.initiated", payload)
        token = (await r.telnyx.wait_for("answer", "v3:gone")).body["stream_auth_token"]
        assert r.calls.health()["active_calls"] == 1
        await r.phone.webhook("call.hangup", {"call_control_id": "v3:gone"})
        assert r.calls.health()["active_calls"] == 0
        header = {"x-telnyx-streaming-auth-token": token}
        assert await refused_with(media_url(r), header, "v3:gone") == 1008
        assert r.calls.calls_total == 0


async def test_the_stream_url_comes_from_configuration_never_from_the_host_header(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, server={"public_url": "https://voice.example.com/agent"}) as r:
        async with httpx.AsyncClient() as client:
            await client.get(f"{r.server.http_url}/healthz", headers={"host": "evil.example:4444"})
        r.telnyx.register_call("v3:h")
        await r.phone.webhook(
            "call.initiated",
            {"call_control_id": "v3:h", "direction": "incoming"},
        )
        answer = await r.telnyx.wait_for("answer", "v3:h")
    url = answer.body["stream_url"]
    assert url == "wss://voice.example.com/agent/telephony/telnyx/media"  # no token in it
    assert "evil" not in json.dumps(answer.body)


async def test_create_app_refuses_a_telephony_server_without_public_url() -> None:
    telephony = TelnyxTelephony(
        TelnyxSettings.model_validate({"api_key": "k" * 10, "public_key": "A" * 43 + "="})
    )
    with pytest.raises(ConfigError, match=r"server.public_url is not set"):
        create_app(
            load_settings(), stt=FakeSTT(), llm=FakeLLM(), tts=FakeTTS(), telephony=telephony
        )


async def test_max_calls_counts_calls_from_the_moment_they_are_answered(tmp_path: Path) -> None:
    async with rig(tmp_path, server={"max_calls": 3}) as r:
        ids = [f"v3:burst-{n}" for n in range(10)]

        async def ring(call_id: str) -> None:
            r.telnyx.register_call(call_id)
            reply = await r.phone.webhook(
                "call.initiated", {"call_control_id": call_id, "direction": "incoming"}
            )
            assert reply.status_code == 200

        async with anyio.create_task_group() as tg:
            for call_id in ids:
                tg.start_soon(ring, call_id)
        await until(lambda: len(r.telnyx.commands) == 10)
        answered = {c.call_control_id for c in r.telnyx.commands if c.action == "answer"}
        rejected = [c for c in r.telnyx.commands if c.action == "reject"]
        assert len(answered) == 3 and len(rejected) == 7
        assert {c.body["cause"] for c in rejected} == {"USER_BUSY"}
        assert r.calls.health()["active_calls"] == 3
        # Dialling out is refused too while three calls are live...
        with pytest.raises(CallRefused):
            await r.telephony.dial("+15557654321", host=r.calls)
        # ...and a call that ends frees its place at once.
        await r.phone.webhook("call.hangup", {"call_control_id": sorted(answered)[0]})
        r.telnyx.register_call("v3:later")
        await r.phone.webhook(
            "call.initiated", {"call_control_id": "v3:later", "direction": "incoming"}
        )
        assert (await r.telnyx.wait_for("answer", "v3:later")).action == "answer"


async def test_at_most_max_calls_agents_run_however_many_media_sockets_connect(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, server={"max_calls": 2}) as r:
        calls = [r.phone.call() for _ in range(2)]
        async with calls[0] as first, calls[1] as second:
            await until(lambda: len(r.calls.active) == 2)
            r.telnyx.register_call("v3:third")
            await r.phone.webhook(
                "call.initiated", {"call_control_id": "v3:third", "direction": "incoming"}
            )
            assert (await r.telnyx.wait_for("reject", "v3:third")).body["cause"] == "USER_BUSY"
            for call in (first, second):  # every token tried again
                answer = await r.telnyx.wait_for("answer", call.call_id)
                header = {"x-telnyx-streaming-auth-token": answer.body["stream_auth_token"]}
                assert await refused_with(media_url(r), header, call.call_id) == 1008
            assert len(r.calls.active) == 2 and r.calls.calls_total == 2


async def test_webhook_bodies_are_capped_while_reading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with rig(tmp_path, server={"max_body_bytes": 4096}) as r:
        url = f"{r.server.http_url}/telephony/telnyx/webhook"
        async with httpx.AsyncClient() as client:
            for _ in range(20):  # a flood of them writes one warning, not twenty
                declared = await client.post(url, content=b"x" * 10_000)
            small = await r.phone.webhook("call.bogus", {"call_control_id": "v3:x"})
        # No content-length: the limit holds while the body streams in. The answer comes
        # after 5 kB of a body that would go on for ever, and the connection is closed.
        # (Signature headers of the right shape, or the route refuses it before its body.)
        signature = "".join(f"{k}: {v}\r\n" for k, v in r.phone.sign(b"{}").items())
        stream = await anyio.connect_tcp("127.0.0.1", r.server.port)
        async with stream:
            await stream.send(
                b"POST /telephony/telnyx/webhook HTTP/1.1\r\nHost: x\r\n"
                + signature.encode()
                + b"transfer-encoding: chunked\r\n\r\n"
            )
            for _ in range(5):
                await stream.send(b"3e8\r\n" + b"y" * 1000 + b"\r\n")
            response = b""
            with anyio.fail_after(5):
                try:
                    while chunk := await stream.receive():
                        response += chunk
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass
    assert declared.status_code == 413 and declared.headers["connection"] == "close"
    assert response.startswith(b"HTTP/1.1 413")
    assert small.status_code == 200  # under the limit, signed: processed as usual
    assert r.telephony.rejected_webhooks == 0  # refused before any signature work
    refusals = [
        rec
        for rec in caplog.records
        if rec.name == "voicekit.server.limits" and rec.levelno >= logging.WARNING
    ]
    assert len(refusals) == 1 and "declares 10000 bytes" in refusals[0].getMessage()


async def test_media_messages_over_the_limit_close_the_socket(tmp_path: Path) -> None:
    async with rig(tmp_path, server={"max_message_bytes": 4096}) as r:
        async with r.phone.call() as call:
            await until(lambda: r.calls.active)
            await call.send_raw("x" * 5000)
            await until(lambda: call.closed_code is not None)
            assert call.closed_code == 1009
            # The call ends at once, and Telnyx is told: no caller left on a silent line.
            await r.telnyx.wait_for("hangup", call.call_id, limit_s=3)
            await until(lambda: r.calls.records, limit_s=3)
        assert r.calls.records[-1].end_reason == "media_error"


def signed_head(r: Rig, body: bytes, timestamp: int | None = None) -> bytes:
    """A webhook's request line and headers, signed for ``body``, ready for its body."""
    headers = "".join(f"{k}: {v}\r\n" for k, v in r.phone.sign(body, timestamp).items())
    return (
        b"POST /telephony/telnyx/webhook HTTP/1.1\r\nHost: x\r\n"
        + headers.encode()
        + f"content-length: {len(body)}\r\n\r\n".encode()
    )


@pytest.mark.parametrize("request_kind", ["silent", "half_headers", "trickled_body"])
async def test_half_finished_requests_are_closed_after_the_request_timeout(
    tmp_path: Path, request_kind: str
) -> None:
    async with rig(tmp_path, server={"request_timeout_s": 0.5}) as r:
        request_bytes = {
            "silent": b"",  # connects and says nothing
            "half_headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\n",  # never finished
            # Signed headers (an unsigned request is refused before its body), then 1 byte.
            "trickled_body": signed_head(r, b"{" + b" " * 99) + b"{",
        }[request_kind]
        stream = await anyio.connect_tcp("127.0.0.1", r.server.port)
        async with stream:
            if request_bytes:
                await stream.send(request_bytes)
            received = b""
            with anyio.fail_after(5):  # closed by the server, well before this
                try:
                    while chunk := await stream.receive():
                        received += chunk
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass
        assert received.startswith(b"HTTP/1.1 408")
        # A client that finishes its request in time is served, on a kept-alive connection.
        async with httpx.AsyncClient() as client:
            for _ in range(2):
                assert (await client.get(f"{r.server.http_url}/healthz")).status_code == 200


@pytest.mark.parametrize("signature", ["none", "stale", "not_base64", "huge_timestamp"])
async def test_an_unsigned_webhook_is_refused_before_its_body_is_read(
    tmp_path: Path, signature: str
) -> None:
    """No signature, a stale timestamp or a malformed signature is decided from the
    headers: the 401 comes at once and the connection closes, though the declared 60 kB
    body never arrives (reading it first held the request until its deadline)."""
    async with rig(tmp_path, server={"request_timeout_s": 30}) as r:
        body = b"{" + b" " * 59_999
        head = {
            "none": b"POST /telephony/telnyx/webhook HTTP/1.1\r\nHost: x\r\n"
            b"content-length: 60000\r\n\r\n",
            "stale": signed_head(r, body, timestamp=int(time.time()) - 3600),
            "not_base64": signed_head(r, body).replace(
                b"telnyx-signature-ed25519: ", b"telnyx-signature-ed25519: %"
            ),
            "huge_timestamp": signed_head(r, body, timestamp=10**400),
        }[signature]
        stream = await anyio.connect_tcp("127.0.0.1", r.server.port)
        async with stream:
            await stream.send(head + b"{")  # one byte of the body, and no more
            with anyio.fail_after(5):  # the deadline is 30 s: only the headers decide
                received = await read_until_closed(stream)
        assert received.startswith(b"HTTP/1.1 401")
        assert b"connection: close" in received.lower()
        assert r.telephony.rejected_webhooks == 1
        signed = await r.phone.webhook("call.bogus", {"call_control_id": "v3:x"})
        assert signed.status_code == 200  # a signed one is still read and verified


@pytest.mark.parametrize("where", ["query", "header"])
async def test_a_non_ascii_media_token_is_refused_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    async with rig(tmp_path, telnyx_options={"media_token_in_url": where == "query"}) as r:
        # A well-formed subject and expiry, so the non-ASCII MAC reaches the comparison.
        subject = base64.urlsafe_b64encode(b"v3:call").decode().rstrip("=")
        if where == "query":
            code = await refused_with(media_url(r) + f"?token={subject}.9999999999.m%C3%A4c")
        else:
            token = f"{subject}.9999999999.m\xe4c"
            code = await refused_with(media_url(r), {"x-telnyx-streaming-auth-token": token})
    assert code == 1008
    assert [rec.levelname for rec in caplog.records if rec.name.startswith("voicekit")] == [
        "WARNING"
    ]
    assert "refused a media stream: invalid or expired token" in caplog.messages


@pytest.mark.parametrize("payload", [[1, 2], 42, "call", {"call_control_id": {"a": 1}}])
async def test_signed_webhooks_of_the_wrong_shape_get_400(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, payload: Any
) -> None:
    async with rig(tmp_path) as r:
        reply = await r.phone.webhook("call.initiated", payload)
        deep_body = b'{"data": {"id": "1", "event_type": "x", "payload": ' + b"[" * 20_000
        deep_body += b"]" * 20_000 + b"}}"
        deep = await r.phone._http.post(
            f"{r.server.http_url}/telephony/telnyx/webhook",
            content=deep_body,
            headers=r.phone.sign(deep_body),
        )
    assert reply.status_code == 400 and deep.status_code == 400
    warnings = [m for m in caplog.messages if "of an unexpected shape" in m]
    assert len(warnings) == 2
    assert r.telnyx.commands == []


# -- malformed input never ends a call or the process ------------------------------------


async def test_odd_length_l16_audio_is_skipped_not_passed_to_the_stt(tmp_path: Path) -> None:
    from voicekit.audio import PCM_16K

    async with rig(tmp_path, utterances=["hello"], replies=["Hi there."]) as r:
        async with r.phone.call(fmt=PCM_16K) as call:
            await until(lambda: r.calls.active)
            media = r.calls.active[call.call_id].media
            for size in (1, 321, 641):
                payload = base64.b64encode(b"\x01" * size).decode()
                await call.send_raw(json.dumps({"event": "media", "media": {"payload": payload}}))
            await until(lambda: media.bad_frames["bad_audio"] == 3)  # type: ignore[attr-defined]
            await call.say(voice(600, PCM_16K))
            await until(lambda: r.calls.active[call.call_id].record.turns)
        await until(lambda: r.calls.records)
    assert r.calls.records[-1].turns[0].heard_text == "Hi there."
    assert [s.audio_bytes % 2 for s in r.soniox.streams] == [0]  # whole samples only


async def test_a_start_frame_with_an_unusable_format_is_refused_and_the_call_hung_up(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        r.telnyx.register_call("v3:odd")
        await r.phone.webhook(
            "call.initiated", {"call_control_id": "v3:odd", "direction": "incoming"}
        )
        token = (await r.telnyx.wait_for("answer", "v3:odd")).body["stream_auth_token"]
        headers = {"x-telnyx-streaming-auth-token": token}
        async with websockets.connect(media_url(r), additional_headers=headers) as ws:
            await ws.send(json.dumps({"event": "connected", "version": "1.0.0"}))
            start = {"media_format": {"encoding": "PCMU", "sample_rate": 500, "channels": 1}}
            await ws.send(json.dumps({"event": "start", "start": start}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        await r.telnyx.wait_for("hangup", "v3:odd")
        assert r.calls.health()["active_calls"] == 0 and r.calls.calls_total == 0


async def test_a_token_in_the_connected_frame_admits_the_stream(tmp_path: Path) -> None:
    """Telnyx may carry the token only in its first frame (PROTOCOLS.md §3a): accepted
    at top level and nested under ``connected``."""
    async with rig(tmp_path) as r:
        for n, nested in enumerate((False, True)):
            call_id = f"v3:frame-{n}"
            r.telnyx.register_call(call_id)
            await r.phone.webhook(
                "call.initiated", {"call_control_id": call_id, "direction": "incoming"}
            )
            token = (await r.telnyx.wait_for("answer", call_id)).body["stream_auth_token"]
            connected: dict[str, Any] = {"event": "connected", "version": "1.0.0"}
            if nested:
                connected["connected"] = {"stream_auth_token": token}
            else:
                connected["stream_auth_token"] = token
            async with websockets.connect(media_url(r)) as ws:
                await ws.send(json.dumps(connected))
                start = {"call_control_id": call_id, "media_format": {"encoding": "PCMU"}}
                await ws.send(json.dumps({"event": "start", "start": start}))
                await until(lambda: call_id in r.calls.active)  # noqa: B023
                await ws.send(json.dumps({"event": "stop"}))
            await until(lambda: call_id not in r.calls.active)  # noqa: B023
        assert r.calls.calls_total == 2


# -- what a second round of attacks found ---------------------------------------------------


async def read_until_closed(stream: Any, limit_s: float = 3.0) -> bytes:
    received = b""
    with anyio.fail_after(limit_s):
        try:
            while chunk := await stream.receive():
                received += chunk
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    return received


UPGRADE = (
    b"GET /telephony/telnyx/media HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
)


@pytest.mark.parametrize("header_bytes", [9_000, 70_000])
async def test_a_websocket_upgrade_with_huge_headers_is_answered_and_closed(
    tmp_path: Path, header_bytes: int
) -> None:
    """websockets refuses header lines over 8 kB with 431; uvicorn then left the socket
    open for ever (200 of them held 200 descriptors). Past 64 kB nothing is read further."""
    async with rig(tmp_path) as r:
        for _ in range(3):
            stream = await anyio.connect_tcp("127.0.0.1", r.server.port)
            async with stream:
                await stream.send(UPGRADE + b"X-Big: " + b"a" * header_bytes + b"\r\n\r\n")
                response = await read_until_closed(stream)
            assert response.startswith(b"HTTP/1.1 431")


async def test_an_endless_header_line_is_cut_off_at_the_header_limit(tmp_path: Path) -> None:
    """httptools has no header limit: one growing header line took the server to 859 MB.
    Past 64 kB the server answers 431 and closes, so the sender fails within a few
    chunks (the kernel may drop the 431 when it resets a socket still being written to)."""
    async with rig(tmp_path) as r:
        stream = await anyio.connect_tcp("127.0.0.1", r.server.port)
        async with stream:
            await stream.send(b"POST /telephony/telnyx/webhook HTTP/1.1\r\nX-Grow: ")
            sent = 0
            with anyio.fail_after(5):
                try:
                    while sent < 64 * 1_048_576:
                        await stream.send(b"a" * 65_536)
                        sent += 65_536
                        await anyio.sleep(0.005)
                except (anyio.BrokenResourceError, OSError):
                    pass
                response = await read_until_closed(stream)
        assert sent < 2 * 1_048_576
        assert response == b"" or response.startswith(b"HTTP/1.1 431")


async def test_text_frames_that_are_not_utf8_are_skipped_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with rig(tmp_path, utterances=["hello"], replies=["Hi there."]) as r:
        # Before authenticating: one frame, no traceback, the socket just closes (1008).
        async with websockets.connect(media_url(r)) as ws:
            await ws.send(b"\xff\xfe{not utf-8", text=True)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        async with r.phone.call() as call:  # on a live call: skipped and counted
            await until(lambda: r.calls.active)
            media = r.calls.active[call.call_id].media
            for _ in range(5):
                await call.ws.send(b'{"event": "media", "\xff": 1}', text=True)
            await until(lambda: media.bad_frames["bad_json"] == 5)  # type: ignore[attr-defined]
            await call.say(voice(600, ULAW_8K))
            await until(lambda: r.calls.active[call.call_id].record.turns)
        await until(lambda: r.calls.records)
    assert r.calls.records[-1].turns[0].heard_text == "Hi there."
    assert not any(rec.levelno >= logging.ERROR for rec in caplog.records)
    assert "Traceback" not in caplog.text


async def test_a_hang_up_between_admission_and_start_is_a_normal_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with rig(tmp_path) as r:
        r.telnyx.register_call("v3:race")
        await r.phone.webhook(
            "call.initiated", {"call_control_id": "v3:race", "direction": "incoming"}
        )
        token = (await r.telnyx.wait_for("answer", "v3:race")).body["stream_auth_token"]
        headers = {"x-telnyx-streaming-auth-token": token}
        async with websockets.connect(media_url(r), additional_headers=headers) as ws:
            await ws.send(json.dumps({"event": "connected", "version": "1.0.0"}))
            await until(lambda: r.calls.live.connected("v3:race"))  # admitted
            await r.phone.webhook("call.hangup", {"call_control_id": "v3:race"})
            start = {"call_control_id": "v3:race", "media_format": {"encoding": "PCMU"}}
            await ws.send(json.dumps({"event": "start", "start": start}))
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
        assert r.calls.calls_total == 0 and r.calls.health()["active_calls"] == 0
    assert not any(rec.levelno >= logging.ERROR for rec in caplog.records)
    assert "call=v3:race: ended before its media stream started" in caplog.messages


@pytest.mark.parametrize("call_id", ["../../etc/evil", "v3:new\nFAKE LOG LINE", "v3:\x00"])
async def test_a_call_id_that_is_not_a_telnyx_id_is_refused(tmp_path: Path, call_id: str) -> None:
    async with rig(tmp_path) as r:
        reply = await r.phone.webhook(
            "call.initiated", {"call_control_id": call_id, "direction": "incoming"}
        )
        assert reply.status_code == 400
        assert r.telnyx.commands == []


# -- what a third round of attacks found ----------------------------------------------------

HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def padded_event(event_id: str, padding: int) -> bytes:
    """A Telnyx event of about ``padding`` bytes, for webhooks near the size limits."""
    payload = {"call_control_id": "v3:x", "padding": "p" * padding}
    event = {"record_type": "event", "event_type": "call.bogus", "id": event_id}
    return json.dumps({"data": {**event, "payload": payload}}).encode()


async def test_a_few_pipelined_requests_are_all_answered_in_order(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        stream = await anyio.connect_tcp("127.0.0.1", r.server.port)
        async with stream:
            await stream.send(HEALTH * 5 + b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            with anyio.fail_after(5):
                while received.count(b"HTTP/1.1 ") < 6:
                    received += await stream.receive()
        statuses = re.findall(rb"HTTP/1\.1 (\d{3})", received)
        assert statuses == [b"200"] * 5 + [b"404"]


async def test_a_flood_of_pipelined_requests_closes_the_connection_and_keeps_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """uvicorn parses every pipelined request in a read and queues them all: 1,764 per
    60 KB read, each a reference cycle kept until a full collection. Past MAX_PIPELINED
    waiting the connection is closed, and its queue is let go of with it."""
    async with rig(tmp_path) as r:
        for _ in range(3):
            stream = await anyio.connect_tcp("127.0.0.1", r.server.port)
            async with stream:
                await stream.send(HEALTH * 1764)
                received = await read_until_closed(stream)
            assert received.count(b"HTTP/1.1 200") <= MAX_PIPELINED + 1
        queued = [
            p
            for p in gc.get_objects()
            if type(p).__name__ == "DeadlineHTTPProtocol" and getattr(p, "pipeline", None)
        ]
        assert queued == []  # no connection holds queued requests any more
        async with httpx.AsyncClient() as client:  # and the server goes on serving
            assert (await client.get(f"{r.server.http_url}/healthz")).status_code == 200
    warnings = [rec for rec in caplog.records if "pipelined requests waiting" in rec.message]
    assert len(warnings) == 1  # three floods, one line (folded)


async def test_a_signed_webhook_is_accepted_however_its_bytes_arrive(tmp_path: Path) -> None:
    """The header limit counts the request line and headers only: a 70 kB signed body
    sent in the same write as its headers was refused with 431."""
    async with rig(tmp_path, server={"max_body_bytes": 256 * 1024}) as r:
        body = padded_event("ev-large-1", 70_000)
        headers = "".join(f"{k}: {v}\r\n" for k, v in r.phone.sign(body).items())
        request = (
            b"POST /telephony/telnyx/webhook HTTP/1.1\r\nHost: x\r\nconnection: close\r\n"
            + headers.encode()
            + b"content-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        stream = await anyio.connect_tcp("127.0.0.1", r.server.port)
        async with stream:
            await stream.send(request)  # one write
            response = await read_until_closed(stream)
    assert response.startswith(b"HTTP/1.1 200"), response[:200]


def test_uvicorns_warnings_about_a_clients_bytes_are_folded() -> None:
    """3,000 malformed request lines wrote 3,000 warnings from uvicorn itself."""
    clock = [0.0]
    folding = FoldedRecords(UVICORN_CLIENT_WARNINGS, clock=lambda: clock[0])
    passed = []
    for i in range(3000):
        clock[0] = i * 0.001
        record = logging.LogRecord(
            "uvicorn.error", logging.WARNING, "x", 1, "Invalid HTTP request received.", None, None
        )
        if folding.filter(record):
            passed.append(record.getMessage())
    other = logging.LogRecord("uvicorn.error", logging.WARNING, "x", 1, "Started", None, None)
    assert passed == ["Invalid HTTP request received."] and folding.filter(other)
    clock[0] = 20.0
    late = logging.LogRecord(
        "uvicorn.error", logging.WARNING, "x", 1, "Invalid HTTP request received.", None, None
    )
    assert folding.filter(late)
    assert late.getMessage() == (
        "Invalid HTTP request received. (and 2999 more like it in the last 20 s)"
    )


async def test_a_second_start_frame_mid_stream_is_counted_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, utterances=["hello"], replies=["Hi there."]) as r:
        async with r.phone.call() as call:
            await until(lambda: r.calls.active)
            media = r.calls.active[call.call_id].media
            fmt = media.inbound_format  # type: ignore[attr-defined]
            start = {
                "event": "start",
                "start": {
                    "call_control_id": "v3:someone-else",
                    "media_format": {"encoding": "L16", "sample_rate": 16000, "channels": 1},
                },
            }
            await call.send_raw(json.dumps(start))
            await until(lambda: media.bad_frames["repeated_start"] == 1, 5)  # type: ignore[attr-defined]
            assert media.inbound_format == fmt  # type: ignore[attr-defined]
            await call.say(voice(600, ULAW_8K))
            await until(lambda: r.calls.active[call.call_id].record.turns)
        await until(lambda: r.calls.records)
    assert r.calls.records[-1].turns[0].heard_text == "Hi there."


async def test_endless_trailer_lines_after_a_chunked_body_are_cut_off(tmp_path: Path) -> None:
    """Trailers are headers after the body: uncounted, 80 MB of ``a:`` lines grew a server
    to 2.6 GB in 8 s. They count toward the header limit like any header."""
    async with rig(tmp_path) as r:
        stream = await anyio.connect_tcp("127.0.0.1", r.server.port)
        async with stream:
            await stream.send(
                b"POST /telephony/telnyx/webhook HTTP/1.1\r\nHost: x\r\n"
                b"transfer-encoding: chunked\r\n\r\n0\r\n"
            )
            sent = 0
            with anyio.fail_after(5):
                try:
                    while sent < 16 * 1_048_576:
                        await stream.send(b"a:\r\n" * 4096)
                        sent += 4 * 4096
                        await anyio.sleep(0.001)
                except (anyio.BrokenResourceError, OSError):
                    pass
                response = await read_until_closed(stream)
        assert sent < 1_048_576
        assert response == b"" or response.startswith(b"HTTP/1.1 431")
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{r.server.http_url}/healthz")).status_code == 200


async def test_headers_near_the_limit_pass_however_their_end_is_split(tmp_path: Path) -> None:
    """50 kB of headers and a 20 kB body: 200 whether the blank line that ends the headers
    arrives whole or in three reads (``\\r\\n`` | ``\\r`` | ``\\n`` + body)."""
    async with rig(tmp_path, server={"max_body_bytes": 256 * 1024}) as r:
        body = padded_event("ev-split", 20_000)
        signed = "".join(f"{k}: {v}\r\n" for k, v in r.phone.sign(body).items()).encode()
        head = (
            b"POST /telephony/telnyx/webhook HTTP/1.1\r\nHost: x\r\nconnection: close\r\n"
            + signed
            + b"x-pad: "
            + b"q" * 50_000
            + b"\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}".encode()
        )
        for pieces in ([head + b"\r\n\r\n" + body], [head + b"\r\n", b"\r", b"\n" + body]):
            stream = await anyio.connect_tcp("127.0.0.1", r.server.port)
            async with stream:
                for piece in pieces:
                    await stream.send(piece)
                    await anyio.sleep(0.05)  # separate reads
                response = await read_until_closed(stream)
            assert response.startswith(b"HTTP/1.1 200"), (len(pieces), response[:120])
