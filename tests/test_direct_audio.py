"""Caller audio from the media socket's own callback straight to the STT.

Each layer seen as a third party would use it: the server's protocol offers text messages
to a handler the app sets through the ASGI scope (in order, never ahead of a queued
message, a failing handler dropped); the Telnyx stream takes only well-formed inbound
media frames; Soniox's ``send_audio_now`` writes at once or leaves everything as it was;
and the session uses the path only where the audio passes through unconverted and the STT
can take it, and stops offering when the stream ends.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from voicekit_telnyx.media import TelnyxMediaStream

from tests.test_media_frame_reader import connect, frame
from tests.test_soniox import finals, stt_for, turns
from voicekit.audio import PCM_16K, ULAW_8K, AudioConverter
from voicekit.session.actions import Keypad
from voicekit.session.inbound_clock import InboundClock
from voicekit.session.media_in import InboundMedia
from voicekit.stt import STTStream
from voicekit.telephony import TEXT_HANDLER_EXTENSION
from voicekit.testing import FakeMediaStream, FakeSTT
from voicekit.testing.emulators import SonioxEmulator
from voicekit.testing.fake_stt import FakeSTTStream

pytestmark = pytest.mark.anyio


class HandlerApp:
    """Sets ``take`` as the text handler, then receives (after ``gate``, if given)."""

    def __init__(self, take: Callable[[str], bool], gate: anyio.Event | None = None) -> None:
        self.take = take
        self.gate = gate
        self.queued: list[str] = []
        self.changed = anyio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        scope["extensions"][TEXT_HANDLER_EXTENSION](self.take)
        await send({"type": "websocket.accept"})
        if self.gate is not None:
            await self.gate.wait()
        while (message := await receive())["type"] != "websocket.disconnect":
            self.queued.append(message.get("text") or message.get("bytes"))
            self.changed.set()
            self.changed = anyio.Event()

    async def wait(self, count: int) -> None:
        with anyio.fail_after(5):
            while len(self.queued) < count:
                await self.changed.wait()


async def test_the_handler_takes_what_it_accepts_and_the_rest_is_queued_in_order() -> None:
    seen: list[str] = []

    def take(text: str) -> bool:
        seen.append(text)
        return text.startswith("take")

    app = HandlerApp(take)
    server, client = await connect(app)  # type: ignore[arg-type]
    try:
        await client.send(*(frame(0x1, t.encode()) for t in ["take 1", "keep 2", "take 3"]))
        await app.wait(1)
        await anyio.sleep(0.05)
    finally:
        await server.__aexit__(None, None, None)
    assert app.queued == ["keep 2"]
    assert seen == ["take 1", "keep 2", "take 3"]


async def test_nothing_overtakes_a_message_waiting_in_the_queue() -> None:
    seen: list[str] = []

    def take(text: str) -> bool:
        seen.append(text)
        return text.startswith("take")

    gate = anyio.Event()
    app = HandlerApp(take, gate)
    server, client = await connect(app)  # type: ignore[arg-type]
    try:
        await client.send(frame(0x1, b"keep 1"), frame(0x1, b"take 2"), frame(0x1, b"take 3"))
        gate.set()  # the app reads its queue only now
        await app.wait(3)
        await client.send(frame(0x1, b"take 4"))  # the queue is empty again
        await anyio.sleep(0.05)
    finally:
        await server.__aexit__(None, None, None)
    assert app.queued == ["keep 1", "take 2", "take 3"]
    assert seen == ["keep 1", "take 4"]


async def test_a_handler_that_raises_is_dropped_and_nothing_is_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    def take(text: str) -> bool:
        calls.append(text)
        raise RuntimeError("a bug in the handler")

    app = HandlerApp(take)
    server, client = await connect(app)  # type: ignore[arg-type]
    try:
        await client.send(frame(0x1, b"one"), frame(0x1, b"two"))
        await app.wait(2)
    finally:
        await server.__aexit__(None, None, None)
    assert app.queued == ["one", "two"]
    assert calls == ["one"]  # dropped after the first failure
    assert "media text handler failed" in caplog.text


# -- the Telnyx stream ----------------------------------------------------------------------


class ScopeOnly:
    """What TelnyxMediaStream.offer_audio reads of its socket: the scope."""

    def __init__(self, extensions: dict[str, Any]) -> None:
        self.scope = {"type": "websocket", "extensions": extensions}


def telnyx_stream(handler: list[Callable[[str], bool] | None]) -> TelnyxMediaStream:
    stream = TelnyxMediaStream(
        ScopeOnly({TEXT_HANDLER_EXTENSION: lambda h: handler.__setitem__(0, h)}),
        call_id="call-1",
        outbound_format=ULAW_8K,
    )
    stream._in_fmt = ULAW_8K  # as wait_start would set it from the start frame
    return stream


def media(payload: bytes, track: str = "inbound") -> str:
    return json.dumps(
        {"event": "media", "media": {"track": track, "payload": base64.b64encode(payload).decode()}}
    )


def test_the_telnyx_stream_offers_only_well_formed_inbound_audio() -> None:
    handler: list[Callable[[str], bool] | None] = [None]
    stream = telnyx_stream(handler)
    taken: list[bytes] = []
    assert stream.offer_audio(lambda data: taken.append(data) is None)
    handle = handler[0]
    assert handle is not None
    assert handle(media(b"\xff" * 160))
    assert not handle(media(b"\xff" * 160, track="outbound"))
    assert not handle('{"event": "mark", "mark": {"name": "m"}}')
    assert not handle('{"event": "media", "media": {"payload": "not base64!"}}')
    assert not handle("{nested" * 3)
    assert taken == [b"\xff" * 160]
    assert stream.frames_in == 1
    assert stream.offer_audio(None) and handler[0] is None


def test_a_frame_the_taker_declines_is_left_for_the_iterator() -> None:
    handler: list[Callable[[str], bool] | None] = [None]
    stream = telnyx_stream(handler)
    assert stream.offer_audio(lambda data: False)
    assert handler[0] is not None and not handler[0](media(b"\xff" * 160))
    assert stream.frames_in == 0


def test_without_the_servers_extension_nothing_is_offered() -> None:
    stream = TelnyxMediaStream(ScopeOnly({}), call_id="call-1", outbound_format=ULAW_8K)
    stream._in_fmt = ULAW_8K
    assert not stream.offer_audio(lambda data: True)


# -- Soniox ---------------------------------------------------------------------------------


@pytest.mark.parametrize("send_ms", [20, 60])
async def test_soniox_writes_at_once_and_a_reconnect_replays_what_it_wrote(send_ms: int) -> None:
    """Every frame at once (20), or three frames a message (60: a frame that does not
    complete a piece is taken and held, and a piece that cannot be written leaves what is
    held as it was, for the usual way): every word once, in order, across a reconnect."""
    from voicekit.testing.emulators._server import Faults

    faults = Faults(drop_after=3, drops=1, delay_ms=0)
    audio = turns(600, 600)
    events: list[Any] = []
    written = waited = 0
    async with SonioxEmulator(utterances=["first turn here", "second one"], faults=faults) as sx:
        async with stt_for(sx, send_ms=send_ms).stream(ULAW_8K, call_id="call-7") as stream:

            async def collect() -> None:
                async for event in stream:
                    events.append(event)

            async with anyio.create_task_group() as tg:
                tg.start_soon(collect)
                for i in range(0, len(audio), 160):
                    if stream.send_audio_now(audio[i : i + 160]):
                        written += 1
                    else:  # down or reconnecting: nothing was recorded, so send it the usual way
                        waited += 1
                        await stream.send_audio(audio[i : i + 160])
                    await anyio.sleep(0.001)
                await stream.aclose()
    assert faults.dropped == 1 and written > 0
    assert finals(events) == ["first turn here", "second one"]  # every word once, in order


async def test_the_default_stream_cannot_send_at_once() -> None:
    assert FakeSTTStream.send_audio_now is STTStream.send_audio_now
    assert not plain_stt().send_audio_now(b"\xff" * 160)


# -- the session's inbound side -------------------------------------------------------------


def plain_stt() -> FakeSTTStream:
    return FakeSTTStream(FakeSTT.scripted([]), ULAW_8K)


class OfferingMedia(FakeMediaStream):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.offers: list[Callable[[bytes], bool] | None] = []

    def offer_audio(self, take: Callable[[bytes], bool] | None) -> bool:
        self.offers.append(take)
        return True


class TakingSTT(FakeSTTStream):
    def __init__(self, *, can: bool = True) -> None:
        super().__init__(FakeSTT.scripted([]), ULAW_8K)
        self.can = can
        self.now: list[bytes] = []
        self.awaited: list[bytes] = []

    def send_audio_now(self, data: bytes) -> bool:
        if self.can:
            self.now.append(data)
        return self.can

    async def send_audio(self, data: bytes) -> None:
        self.awaited.append(data)


class Ending:
    def __init__(self) -> None:
        self.reason: str | None = None

    def end(self, reason: str) -> None:
        self.reason = reason


def inbound(media: FakeMediaStream, stt_format: Any = ULAW_8K) -> tuple[InboundMedia, InboundClock]:
    clock = InboundClock()
    return (
        InboundMedia(
            media,
            converter=AudioConverter(media.inbound_format, stt_format),
            clock=clock,
            keypad=Keypad(0.5, lambda keys: None),
            ending=Ending(),  # type: ignore[arg-type]
            pipeline=lambda: None,
            task_group=lambda: None,
            call_id="call-1",
        ),
        clock,
    )


@contextlib.asynccontextmanager
async def reading(
    media: OfferingMedia, stt: FakeSTTStream
) -> AsyncIterator[tuple[Callable[[bytes], bool], InboundClock]]:
    """The session reading ``media`` into ``stt``; yields the ``take`` it offered and its
    arrival clock, and hangs up at the end."""
    reader, clock = inbound(media)
    async with anyio.create_task_group() as tg:
        tg.start_soon(reader.run, stt)
        await anyio.sleep(0.01)
        take = media.offers[0]
        assert take is not None
        yield take, clock
        await anyio.sleep(0.01)
        media.hang_up()


async def test_the_session_takes_frames_from_the_callback_and_stops_offering_at_the_end() -> None:
    media = OfferingMedia()
    stt = TakingSTT()
    async with reading(media, stt) as (take, clock):
        assert take(b"\x01" * 160) and take(b"\x02" * 160)
        stt.can = False
        assert not take(b"\x03" * 160)  # declined: the frame goes the usual way
        media.feed(b"\x03" * 160)
    assert stt.now == [b"\x01" * 160, b"\x02" * 160]
    assert stt.awaited == [b"\x03" * 160]
    assert clock.arrival(40) is not None  # the taken frames were clocked as they arrived
    assert media.offers[-1] is None  # no more offers once the stream has ended


@pytest.mark.parametrize("why", ["the audio is converted", "the STT cannot send at once"])
async def test_the_session_does_not_offer_where_it_cannot_take(why: str) -> None:
    if why == "the audio is converted":
        media = OfferingMedia()
        reader, _ = inbound(media, stt_format=PCM_16K)
        stt: FakeSTTStream = TakingSTT()
    else:
        media = OfferingMedia()
        reader, _ = inbound(media)
        stt = plain_stt()
    async with anyio.create_task_group() as tg:
        tg.start_soon(reader.run, stt)
        await anyio.sleep(0.01)
        media.hang_up()
    assert media.offers == []


class RaisingSTT(TakingSTT):
    """Writes the frame, then fails: a third party's bug."""

    def send_audio_now(self, data: bytes) -> bool:
        self.now.append(data)
        raise RuntimeError("failed after writing")


async def test_an_stt_that_raises_after_writing_never_gets_the_frame_twice() -> None:
    media = OfferingMedia()
    stt = RaisingSTT()
    async with reading(media, stt) as (take, _):
        assert take(b"\x01" * 160)  # taken: it may have been written
        assert media.offers[-1] is None  # and the session stopped offering
        media.feed(b"\x02" * 160)  # the rest of the call goes the usual way
    assert stt.now == [b"\x01" * 160]
    assert stt.awaited == [b"\x02" * 160]


async def test_a_closed_socket_lets_go_of_its_handler() -> None:
    handlers: list[Any] = []

    class KeepingApp(HandlerApp):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            handlers.append(scope)
            await super().__call__(scope, receive, send)

    app = KeepingApp(lambda text: True)
    server, client = await connect(app)  # type: ignore[arg-type]
    try:
        await client.send(frame(0x1, b"one"))
        await client.stream.aclose()
        await anyio.sleep(0.1)
    finally:
        await server.__aexit__(None, None, None)
    assert TEXT_HANDLER_EXTENSION not in handlers[0]["extensions"]


class SlowSTT(TakingSTT):
    """send_audio takes a while: frames offered meanwhile must wait their turn."""

    def __init__(self) -> None:
        super().__init__()
        self.release = anyio.Event()

    async def send_audio(self, data: bytes) -> None:
        await self.release.wait()
        self.awaited.append(data)


async def test_no_frame_is_taken_while_an_earlier_one_is_still_being_sent() -> None:
    media = OfferingMedia()
    stt = SlowSTT()
    stt.can = False
    async with reading(media, stt) as (take, _):
        assert not take(b"\x01" * 160)
        media.feed(b"\x01" * 160)  # declined, so it goes through the slow send_audio
        await anyio.sleep(0.01)
        stt.can = True
        assert not take(b"\x02" * 160)  # the STT could, but frame 1 is not out yet
        media.feed(b"\x02" * 160)
        stt.release.set()
        await anyio.sleep(0.01)
        assert take(b"\x03" * 160)  # the queue is drained: taken again
    assert stt.awaited == [b"\x01" * 160, b"\x02" * 160]
    assert stt.now == [b"\x03" * 160]
