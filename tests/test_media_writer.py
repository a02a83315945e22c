"""The media socket's direct writer (``TEXT_WRITER_EXTENSION``): a text message written
at once, framed by the server itself, as a raw TCP client sees it; and the Telnyx stream
using it without ever letting a message overtake one still on its way through ``send``."""

from __future__ import annotations

import struct
from typing import Any

import anyio
import pytest
from voicekit_telnyx.media import TelnyxMediaStream

from tests.test_media_frame_reader import Client, connect, frame
from voicekit.audio import ULAW_8K
from voicekit.telephony import TEXT_WRITER_EXTENSION

pytestmark = pytest.mark.anyio

SIZES = [0, 1, 125, 126, 400, 65535, 65536, 70_000]


async def read_frames(client: Client, count: int) -> list[tuple[int, bytes]]:
    """``count`` unmasked frames from the server, any length encoding."""
    stream, buffer, frames = client.stream, client.buffer, []
    with anyio.fail_after(10):
        while len(frames) < count:
            if len(buffer) >= 2:
                size, at = buffer[1] & 0x7F, 2
                if size == 126 and len(buffer) >= 4:
                    size, at = struct.unpack("!H", buffer[2:4])[0], 4
                elif size == 127 and len(buffer) >= 10:
                    size, at = struct.unpack("!Q", buffer[2:10])[0], 10
                if size not in (126, 127) or at > 2:
                    if len(buffer) >= at + size:
                        assert not buffer[1] & 0x80, "a server frame is never masked"
                        frames.append((buffer[0], bytes(buffer[at : at + size])))
                        del buffer[: at + size]
                        continue
            buffer.extend(await stream.receive())
    return frames


class WriterApp:
    """Accepts, then runs ``script(write_now, send)``."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.done = anyio.Event()
        self.result: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        write_now = scope["extensions"][TEXT_WRITER_EXTENSION]
        assert write_now("too soon") is False  # the handshake is not answered yet
        await send({"type": "websocket.accept"})
        try:
            self.result = await self.script(write_now, send)
        finally:
            self.done.set()
        while (await receive())["type"] != "websocket.disconnect":
            pass


async def test_messages_written_at_once_and_sent_arrive_in_order_intact() -> None:
    texts = ["\u00e9" * (n // 2) + "x" * (n % 2) for n in SIZES]

    async def script(write_now: Any, send: Any) -> None:
        for n, text in enumerate(texts):
            if n % 2:
                await send({"type": "websocket.send", "text": text})
            else:
                assert write_now(text) is True

    app = WriterApp(script)
    server, client = await connect(app)  # type: ignore[arg-type]
    try:
        received = await read_frames(client, len(texts))
    finally:
        await server.__aexit__(None, None, None)
    assert received == [(0x81, text.encode()) for text in texts]


async def test_a_full_write_buffer_declines_and_nothing_is_lost() -> None:
    """A client that stops reading: once the buffer is above its high-water mark the
    writer declines, the message goes through ``send`` (which waits), and the client
    that reads again gets every message in order."""
    message = "m" * 60_000
    declined = anyio.Event()

    async def script(write_now: Any, send: Any) -> int:
        written = 0
        while write_now(f"{written:06d}" + message):
            written += 1
            assert written < 1000, "never declined"
        declined.set()
        await send({"type": "websocket.send", "text": f"{written:06d}" + message})
        return written + 1

    app = WriterApp(script)
    server, client = await connect(app)  # type: ignore[arg-type]
    try:
        with anyio.fail_after(10):
            await declined.wait()  # nothing has been read meanwhile
        frames = await read_frames(client, 1)
        while not app.done.is_set() or len(frames) < app.result:
            frames += await read_frames(client, 1)
    finally:
        await server.__aexit__(None, None, None)
    assert app.result > 1
    assert [int(payload[:6]) for _, payload in frames] == list(range(app.result))


async def test_after_a_close_the_writer_declines() -> None:
    async def script(write_now: Any, send: Any) -> bool:
        await send({"type": "websocket.close", "code": 1000})
        return bool(write_now("after the close"))

    app = WriterApp(script)
    server, client = await connect(app)  # type: ignore[arg-type]
    try:
        assert await client.close_code() == 1000
        await client.send(frame(0x8, struct.pack("!H", 1000)))
        with anyio.fail_after(5):
            await app.done.wait()
    finally:
        await server.__aexit__(None, None, None)
    assert app.result is False


class FakeSocket:
    """A Starlette WebSocket stand-in: ``send_text`` waits for ``release`` when set."""

    def __init__(self, write_now: Any) -> None:
        self.scope = {"extensions": {TEXT_WRITER_EXTENSION: write_now}}
        self.order: list[tuple[str, str]] = []
        self.release: anyio.Event | None = None

    async def send_text(self, text: str) -> None:
        if self.release is not None:
            await self.release.wait()
        self.order.append(("send", text))


async def test_the_telnyx_stream_writes_at_once_and_never_overtakes_a_waiting_send() -> None:
    accept = [True]
    socket: FakeSocket

    def write_now(text: str) -> bool:
        if accept[0]:
            socket.order.append(("now", text))
        return accept[0]

    socket = FakeSocket(write_now)
    stream = TelnyxMediaStream(socket, call_id="c", outbound_format=ULAW_8K)
    await stream.mark("one")
    accept[0] = False  # the buffer is full: the next one goes through send, and waits
    socket.release = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(stream.mark, "two")
        await anyio.sleep(0.01)
        accept[0] = True  # the buffer drained, but "two" is still on its way
        tg.start_soon(stream.mark, "three")
        await anyio.sleep(0.01)
        socket.release.set()
    await stream.mark("four")
    names = [(how, text.split('"name": "')[1].split('"')[0]) for how, text in socket.order]
    assert names == [("now", "one"), ("send", "two"), ("send", "three"), ("now", "four")]
