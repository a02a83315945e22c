"""The Telnyx plugin's parts: Call Control against the REST emulator, frames, signatures."""

from __future__ import annotations

import base64
import json
import time

import pytest
from nacl.signing import SigningKey
from voicekit_telnyx.frames import (
    BadFrame,
    Connected,
    MediaFrame,
    StartFrame,
    inbound_audio,
    media_frame,
    parse_frame,
)
from voicekit_telnyx.rest import TelnyxClient
from voicekit_telnyx.webhooks import WebhookVerificationError, decode_public_key, verify_webhook

from voicekit.audio import ULAW_8K, AudioFormat
from voicekit.errors import ProviderAuthError, ProviderError, ProviderUnavailable
from voicekit.server import MediaTokens
from voicekit.testing.emulators import TelnyxEmulator

KEY = "test-telnyx-key"


def client_for(telnyx: TelnyxEmulator, key: str = KEY) -> TelnyxClient:
    return TelnyxClient(api_key=key, base_url=telnyx.url, timeout=5)


@pytest.mark.anyio
async def test_commands_have_the_documented_shapes() -> None:
    async with TelnyxEmulator() as telnyx:
        client = client_for(telnyx)
        try:
            data = await client.dial(
                connection_id="c1",
                to="+15557654321",
                from_="+15550001111",
                stream_url="wss://x/media",
                client_state="YWJj",
            )
            call_id = data["call_control_id"]
            assert call_id.startswith("v3:") and data["record_type"] == "call"
            await client.answer(call_id, stream_url="wss://x/media", stream_track="inbound_track")
            await client.playback_start(call_id, audio_url="https://x/a.mp3")
            await client.record_start(call_id)
            await client.transfer(call_id, "+15550002222")
            await client.hangup(call_id)
            await client.hangup(call_id)  # already ended (90018): counts as done
        finally:
            await client.aclose()
    assert telnyx.actions(call_id) == [
        "dial",
        "answer",
        "playback_start",
        "record_start",
        "transfer",
        "hangup",
    ]
    dial = telnyx.commands[0].body
    assert dial["from"] == "+15550001111" and dial["client_state"] == "YWJj"
    assert telnyx.commands[3].body == {"format": "wav", "channels": "dual"}


@pytest.mark.anyio
async def test_errors_carry_telnyx_code_title_and_detail() -> None:
    async with TelnyxEmulator() as telnyx:
        client = client_for(telnyx)
        try:
            with pytest.raises(ProviderError) as err:
                await client.answer("v3:nope")
            assert err.value.code == "90015" and err.value.status_code == 404
            assert not err.value.retryable and "Invalid call_control_id" in str(err.value)
            with pytest.raises(ProviderError) as err:
                await client.dial(connection_id="c1", to="5551234", from_="+15550001111")
            assert err.value.code == "10016" and "Phone number" in str(err.value)
            with pytest.raises(ProviderError) as err:
                await client.dial(connection_id="c1", to="+15557654321")
            assert err.value.code == "10004"
        finally:
            await client.aclose()
        bad = client_for(telnyx, key="wrong")
        try:
            with pytest.raises(ProviderAuthError, match="TELNYX_API_KEY"):
                await bad.dial(connection_id="c1", to="+15557654321", from_="+15550001111")
        finally:
            await bad.aclose()


@pytest.mark.anyio
async def test_429_and_5xx_are_retried_by_the_core_policy() -> None:
    from voicekit.retry import RetryPolicy

    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with TelnyxEmulator() as telnyx:
        telnyx.register_call("v3:r")
        telnyx.fail_next = [429, 503]
        client = TelnyxClient(
            api_key=KEY, base_url=telnyx.url, timeout=5, policy=RetryPolicy(attempts=4, sleep=sleep)
        )
        try:
            await client.answer("v3:r")
            telnyx.fail_next = [500] * 10
            with pytest.raises(ProviderUnavailable) as err:
                await client.hangup("v3:r")
            assert err.value.retryable and err.value.status_code == 500
        finally:
            await client.aclose()
    assert telnyx.actions("v3:r") == ["answer"]
    assert waits == [0.2, 0.4, 0.2, 0.4, 0.8]  # two retries; then three before giving up


@pytest.mark.parametrize("audio", [b"", b"\xff" * 160, bytes(range(256)) * 2])
def test_a_media_message_is_the_json_of_its_documented_shape(audio: bytes) -> None:
    text = media_frame(audio)
    payload = base64.b64encode(audio).decode()
    assert text == json.dumps({"event": "media", "media": {"payload": payload}})
    assert parse_frame(text) == MediaFrame("inbound", audio, None)


def test_frames_parse_exactly() -> None:
    start = parse_frame(
        json.dumps(
            {
                "event": "start",
                "sequence_number": "1",
                "stream_id": "s1",
                "start": {
                    "call_control_id": "v3:c",
                    "from": "+1",
                    "to": "+2",
                    "media_format": {"encoding": "PCMA", "sample_rate": 8000, "channels": 1},
                },
            }
        )
    )
    assert isinstance(start, StartFrame) and start.format == AudioFormat("alaw", 8000)
    assert start.stream_id == "s1" and start.call_control_id == "v3:c"
    l16 = parse_frame(
        json.dumps(
            {"event": "start", "start": {"media_format": {"encoding": "L16", "sample_rate": 16000}}}
        )
    )
    assert isinstance(l16, StartFrame) and l16.format == AudioFormat("pcm_s16le", 16000)
    media = parse_frame(
        json.dumps(
            {
                "event": "media",
                "sequence_number": "4",
                "media": {
                    "track": "inbound",
                    "chunk": "2",
                    "timestamp": "5",
                    "payload": base64.b64encode(b"\xff" * 160).decode(),
                },
            }
        )
    )
    assert media == MediaFrame("inbound", b"\xff" * 160, 4)
    assert parse_frame('{"event": "connected", "version": "1.0.0"}') == Connected(None)
    for raw, kind in [
        ("{", "bad_json"),
        ('{"event": "zap"}', "unknown_event"),
        ('{"event": "media", "media": {"payload": "%%"}}', "bad_base64"),
        (
            '{"event": "start", "start": {"media_format": {"encoding": "OPUS"}}}',
            "bad_start",
        ),
        ("x" * 300_000, "oversized"),
    ]:
        with pytest.raises(BadFrame) as err:
            parse_frame(raw)
        assert err.value.kind == kind


def test_signature_checks_follow_the_reference() -> None:
    key = SigningKey.generate()
    public = bytes(key.verify_key)
    body = b'{"data": {"id": "1"}}'
    now = int(time.time())

    def headers(ts: int, sig: bytes | None = None) -> dict[str, str]:
        signature = sig if sig is not None else key.sign(f"{ts}|".encode() + body).signature
        return {
            "Telnyx-Signature-Ed25519": base64.b64encode(signature).decode(),
            "Telnyx-Timestamp": str(ts),
        }

    verify_webhook(body, headers(now), public, now=now)
    verify_webhook(body, headers(now - 300), public, now=now)  # the edge is allowed
    for bad, match in [
        (headers(now - 301), "301 s in the past"),
        (headers(now + 301), "301 s in the future"),
        ({"telnyx-timestamp": str(now)}, "missing"),
        (headers(now, sig=b"\x00" * 63), "64 bytes"),
    ] + [
        # Not Unix seconds: words, signs, spaces, other scripts' digits, and numbers so
        # long that the skew arithmetic would overflow (a 500 once, with a traceback).
        ({**headers(now), "telnyx-timestamp": stamp}, "Unix seconds")
        for stamp in [
            "soon",
            f"+{now}",
            f" {now}",
            "1_700_000_000",
            "\u0661" * 10,  # Arabic-Indic digits
            "1" + "0" * 400,
            "-" + "9" * 400,
        ]
    ]:
        with pytest.raises(WebhookVerificationError, match=match):
            verify_webhook(body, bad, public, now=now)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_webhook(body + b" ", headers(now), public, now=now)  # the raw body, exactly
    with pytest.raises(WebhookVerificationError, match="32 bytes"):
        decode_public_key(base64.b64encode(b"short").decode())


def test_media_tokens_sign_and_expire() -> None:
    tokens = MediaTokens(b"k" * 32, ttl_s=60)
    token = tokens.issue("v3:call", now=1000)
    assert tokens.check(token, now=1059) == "v3:call"
    assert tokens.check(token, now=1061) is None
    other = base64.urlsafe_b64encode(b"v3:other").rstrip(b"=").decode()
    forged = ".".join([other, *token.split(".")[1:]])
    assert tokens.check(forged, now=1000) is None  # the MAC binds the call id
    assert MediaTokens(b"other" * 8).check(token, now=1000) is None
    assert tokens.check(None) is None and tokens.check("a.b") is None


def test_codec_constants() -> None:
    from voicekit_telnyx.frames import CODECS

    assert CODECS["PCMU"] == ULAW_8K


def test_thousands_of_malformed_frames_raise_only_bad_frame() -> None:
    """Whatever arrives, parsing answers with a frame or BadFrame: never RecursionError,
    AudioFormatError, OverflowError or anything else that would end the call."""
    from tests.malformed_frames import malformed_frames

    kinds: dict[str, int] = {}
    for raw in malformed_frames(5000):
        try:
            parse_frame(raw)
        except BadFrame as exc:
            kinds[exc.kind] = kinds.get(exc.kind, 0) + 1
    assert {"bad_json", "bad_media", "bad_base64", "bad_start", "bad_dtmf"} <= set(kinds)
    assert sum(kinds.values()) > 4000


def test_the_fast_path_takes_exactly_the_inbound_audio_the_parser_would() -> None:
    """``inbound_audio`` (the socket callback's path) returns a payload for precisely the
    frames ``parse_frame`` reads as non-empty inbound media, and the same bytes."""
    from tests.malformed_frames import malformed_frames

    audio = b"\x7f" * 160
    payload = base64.b64encode(audio).decode()
    good = [
        media_frame(audio),
        json.dumps(
            {
                "event": "media",
                "sequence_number": "4",
                "media": {"payload": payload, "track": "inbound", "chunk": "2", "timestamp": "5"},
                "stream_id": "s",
            }
        ),
        json.dumps({"media": {"track": "inbound", "payload": payload}, "event": "media"}),
    ]
    others = [
        json.dumps({"event": "media", "media": {"track": "outbound", "payload": payload}}),
        json.dumps({"event": "media", "media": {"track": 1, "payload": payload}}),
        json.dumps({"event": "media", "media": {"payload": payload[:-1]}}),
        json.dumps({"event": "media", "media": {"payload": "\u00e9" * 8}}),
        json.dumps({"event": "media", "media": {"payload": payload + "=="}}),
        json.dumps({"event": "media", "media": {"payload": 7}}),
        json.dumps({"event": "media", "media": [payload]}),
        json.dumps([{"event": "media", "media": {"payload": payload}}]),
        json.dumps({"event": "mark", "mark": {"name": "m"}}),
        media_frame(audio).encode("utf-16"),
        '{"event": "media", "media": {"payload": "' + payload + '"}} x',
    ]
    for raw in good:
        assert inbound_audio(raw) == audio == inbound_audio(raw.encode())
    for raw in [*others, *malformed_frames(3000)]:
        try:
            frame = parse_frame(raw)
        except BadFrame:
            frame = None
        got = inbound_audio(raw)
        if isinstance(frame, MediaFrame) and frame.track == "inbound" and frame.payload:
            assert got == frame.payload, raw
        else:
            assert not got, raw  # None, or an empty payload the stream skips either way


@pytest.mark.parametrize(
    "start, problem",
    [
        ({"media_format": {"encoding": "PCMU", "sample_rate": 500}}, "sample_rate 500"),
        ({"media_format": {"encoding": "L16", "sample_rate": "inf"}}, "sample_rate 'inf'"),
        ({"media_format": {"encoding": "PCMU", "channels": 2}}, "only mono"),
        ({"media_format": "PCMU"}, "not an object"),
    ],
)
def test_a_start_frame_with_an_unusable_format_is_a_bad_start(
    start: dict[str, object], problem: str
) -> None:
    with pytest.raises(BadFrame) as err:
        parse_frame(json.dumps({"event": "start", "start": start}))
    assert err.value.kind == "bad_start" and problem in str(err.value)


def test_custom_parameters_keep_plain_values_only_and_a_record_can_hold_them() -> None:
    import dataclasses

    from voicekit.records import CallRecord
    from voicekit.telephony import CallInfo

    nested: object = "deep"
    for _ in range(700):
        nested = [nested]
    params = {"customer_id": "c-42", "tier": 2, "deep": nested, "map": {"a": "b"}}
    params |= {f"p{i}": "x" for i in range(100)}
    raw = json.dumps({"event": "start", "start": {"custom_parameters": params}})
    frame = parse_frame(raw)
    assert isinstance(frame, StartFrame)
    kept = frame.custom_parameters
    assert kept["customer_id"] == "c-42" and kept["tier"] == 2
    assert "deep" not in kept and "map" not in kept and len(kept) == 64
    record = CallRecord(
        call=CallInfo(call_id="v3:c", provider_data={"custom_parameters": kept}), started_at=0.0
    )
    json.dumps(dataclasses.asdict(record), default=str)  # what the record file holds


def test_deep_nesting_and_huge_numbers_are_bad_json() -> None:
    """Nor are NaN and Infinity JSON, nor a number past a double (``1e400``)."""
    start = '{"event": "start", "start": {"media_format": {"sample_rate": %s}}}'
    for raw in (
        "[" * 30_000,
        "9" * 5000,
        '{"event": "media", "media": ' + "[" * 20_000,
        start % "1e400",
        start % "Infinity",
        start % "NaN",
    ):
        with pytest.raises(BadFrame) as err:
            parse_frame(raw)
        assert err.value.kind == "bad_json"


def test_media_tokens_that_are_not_ascii_are_invalid_not_an_error() -> None:
    tokens = MediaTokens(b"s" * 32)
    good = tokens.issue("v3:call")
    assert tokens.check(good) == "v3:call"
    for bad in ("t\u00f6k\u00e9n.1.x", good[:-1] + "\u00e9", "\u00e9.\u00e9.\u00e9", ""):
        assert tokens.check(bad) is None


@pytest.mark.anyio
async def test_a_hang_up_while_audio_is_sent_is_a_normal_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Starlette raises WebSocketDisconnect (not OSError) when the caller has gone."""
    import logging

    from starlette.websockets import WebSocketDisconnect
    from voicekit_telnyx.media import TelnyxMediaStream

    class GoneSocket:
        sent = 0

        async def send_text(self, text: str) -> None:
            self.sent += 1
            raise WebSocketDisconnect(1006)

    caplog.set_level(logging.INFO)
    socket = GoneSocket()
    stream = TelnyxMediaStream(
        socket, call_id="v3:c", outbound_format=ULAW_8K, gone=(WebSocketDisconnect,)
    )
    await stream.send_audio(b"\xff" * 160)
    await stream.mark("r1.1")
    await stream.clear()
    assert stream.closed and socket.sent == 1  # nothing more is tried on a dead socket
    assert [r.levelname for r in caplog.records] == ["INFO"]


@pytest.mark.anyio
async def test_call_ids_stay_one_path_segment_in_rest_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = TelnyxClient(api_key=KEY, base_url="http://127.0.0.1:9/v2", timeout=1)
    paths: list[str] = []

    async def record(path: str, body: dict[str, object], action: str) -> dict[str, object]:
        paths.append(path)
        return {}

    monkeypatch.setattr(client, "_post", record)
    await client.hangup("../../etc/evil")
    await client.aclose()
    assert paths == ["calls/..%2F..%2Fetc%2Fevil/actions/hangup"]


@pytest.mark.anyio
async def test_telnyx_error_events_are_one_warning_and_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """3,000 error events made 3,000 warning lines: a stream cannot flood the log."""
    import logging

    from voicekit_telnyx.media import TelnyxMediaStream

    start = {"media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}}
    error = {"event": "error", "payload": {"code": 100002, "title": "x", "detail": "y"}}
    messages = [json.dumps({"event": "start", "start": start})] + [json.dumps(error)] * 3000

    class Socket:
        async def receive(self) -> dict[str, object]:
            if messages:
                return {"type": "websocket.receive", "text": messages.pop(0)}
            return {"type": "websocket.disconnect", "code": 1000}

    stream = TelnyxMediaStream(Socket(), call_id="v3:c", outbound_format=ULAW_8K)
    await stream.wait_start()
    caplog.set_level(logging.DEBUG, logger="voicekit_telnyx")
    events = [event async for event in stream]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert stream.error_frames == 3000 and len(events) == 1  # the end of the stream
    assert warnings == [
        "call=v3:c: Telnyx media error 100002 x: y",
        "call=v3:c: 3000 Telnyx media error events in all",
    ]


def test_json_in_bytes_must_be_utf8() -> None:
    frame = json.dumps({"event": "stop"})
    assert type(parse_frame(frame.encode())).__name__ == "StopFrame"
    for encoding in ("utf-16", "utf-32"):
        with pytest.raises(BadFrame) as err:
            parse_frame(frame.encode(encoding))
        assert err.value.kind == "bad_json"


def test_the_plugin_imports_without_its_extra_and_says_what_to_install() -> None:
    """Without orjson (the telnyx extra), the plugin still imports, so discovery lists it
    and names the missing extra; reading a frame says what to install."""
    script = """
import sys
class NoOrjson:
    def find_spec(self, name, path=None, target=None):
        if name == "orjson":
            raise ModuleNotFoundError("No module named 'orjson'", name="orjson")
sys.meta_path.insert(0, NoOrjson())
import voicekit_telnyx
from voicekit_telnyx.frames import parse_frame
try:
    parse_frame('{"event": "stop"}')
except ModuleNotFoundError as exc:
    print(exc.name, exc)
"""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.startswith("orjson ") and "pip install 'voicekit[telnyx]'" in done.stdout
