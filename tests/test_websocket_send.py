"""voicekit.websocket.send_message: direct writes when the socket is free, send() otherwise."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
import websockets
from websockets.protocol import Side, State

from voicekit.websocket import send_message
from voicekit.ws_frames import client_frame

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def collecting_server(**options: Any) -> AsyncIterator[tuple[int, list[str | bytes]]]:
    """A loopback websockets server keeping every message it receives: (port, messages)."""
    received: list[str | bytes] = []

    async def collect(ws: Any) -> None:
        async for message in ws:
            received.append(message)

    async with websockets.serve(collect, "127.0.0.1", 0, **options) as server:
        yield server.sockets[0].getsockname()[1], received


async def test_messages_arrive_in_order_without_awaiting_send() -> None:
    async with collecting_server() as (port, received):
        async with websockets.connect(f"ws://127.0.0.1:{port}") as ws:

            async def must_not_be_called(message: Any) -> None:
                raise AssertionError("took the slow path")

            ws.send = must_not_be_called
            for i in range(50):
                await send_message(ws, bytes([i]) * 160)
            await send_message(ws, "done")
            del ws.send
            await ws.close()
    assert received == [bytes([i]) * 160 for i in range(50)] + ["done"]


SIZES = [0, 1, 125, 126, 160, 65535, 65536, 70_000]


async def test_every_frame_size_is_built_here_and_arrives_intact() -> None:
    """Binary and text (UTF-8) messages of each length encoding: 7-bit, 16-bit, 64-bit."""
    sent: list[str | bytes] = [bytes([n % 251]) * n for n in SIZES]
    sent += ["\u00e9" * (n // 2) for n in SIZES]
    async with collecting_server(max_size=None) as (port, received):
        async with websockets.connect(f"ws://127.0.0.1:{port}", compression=None) as ws:

            def not_websockets_framing(*args: Any) -> None:
                raise AssertionError("framed by websockets, not here")

            ws.protocol.send_binary = ws.protocol.send_text = not_websockets_framing
            for message in sent:
                await send_message(ws, message)
            del ws.protocol.send_binary, ws.protocol.send_text
            await ws.close()
    assert received == sent


async def test_bytes_websockets_has_queued_go_first_through_its_own_framing() -> None:
    """A frame websockets has serialised but not written yet (a pong, say) must not be
    overtaken: the message then goes through websockets, which writes both in order."""
    async with collecting_server() as (port, received):
        async with websockets.connect(f"ws://127.0.0.1:{port}", compression=None) as ws:
            ws.protocol.send_text(b"queued first")  # serialised, not yet written
            await send_message(ws, b"then this")
            await ws.close()
    assert received == ["queued first", b"then this"]


def test_frames_are_masked_with_a_fresh_key_each() -> None:
    """Keys come from the system's random source, 1024 at a time: they differ from frame
    to frame, across the refills too, and each frame unmasks to its payload."""
    from websockets.frames import Frame
    from websockets.streams import StreamReader

    payload = b"\x00" * 8  # masked zeros are the key itself, repeated
    keys = []
    for _ in range(3000):
        frame = client_frame(0x2, payload)
        assert frame[:2] == bytes((0x82, 0x80 | len(payload)))
        keys.append(frame[2:6])
        assert frame[6:] == keys[-1] * 2
        reader = StreamReader()
        reader.feed_data(frame)
        parser = Frame.parse(reader.read_exact, mask=True)
        with pytest.raises(StopIteration) as done:
            next(parser)
        assert done.value.value.data == payload
    assert len(set(keys)) > 2990  # 32-bit keys: a few repeats by chance at most


class FakeConnection:
    def __init__(self, *, state: State = State.OPEN, paused: bool = False) -> None:
        self.queued: list[Any] = []
        self.protocol = SimpleNamespace(
            state=state, send_binary=self.queued.append, send_text=self.queued.append
        )
        self.paused = paused
        self.send_in_progress = None
        self.sent: list[Any] = []
        self.aborted = False
        self.transport = SimpleNamespace(abort=self._abort)

    def _abort(self) -> None:
        self.aborted = True

    def send_data(self) -> None:
        raise ConnectionResetError("peer went away")

    async def send(self, message: Any) -> None:
        self.sent.append(message)


@pytest.mark.parametrize(
    "connection",
    [
        FakeConnection(paused=True),  # the transport's buffer is above its high-water mark
        FakeConnection(state=State.CLOSING),
        SimpleNamespace(sent=[], send=None),  # not a websockets.asyncio connection
    ],
)
async def test_a_busy_or_closing_socket_takes_send(connection: Any) -> None:
    if isinstance(connection, SimpleNamespace):

        async def send(message: Any) -> None:
            connection.sent.append(message)

        connection.send = send
    await send_message(connection, b"audio")
    assert connection.sent == [b"audio"]


@pytest.mark.parametrize("framed_here", [False, True])
async def test_a_failed_write_aborts_and_raises_oserror(framed_here: bool) -> None:
    connection = FakeConnection()
    if framed_here:  # a client connection with nothing queued: the frame is built here

        def write(data: bytes) -> None:
            raise ConnectionResetError("peer went away")

        connection.protocol.side, connection.protocol.extensions = Side.CLIENT, []
        connection.protocol.writes = []
        connection.transport.write = write
    with pytest.raises(OSError, match="peer went away"):
        await send_message(connection, b"audio")
    assert connection.aborted and connection.sent == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="a platform without fork has no child to test")
def test_a_forked_child_draws_its_own_masking_keys() -> None:
    """The key pool is per process: a child never repeats keys its parent still holds."""
    client_frame(0x2, b"")  # the parent has a pool with keys left
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next three keys, then leave at once
        os.write(write, b"".join(client_frame(0x2, b"")[2:6] for _ in range(3)))
        os._exit(0)
    os.close(write)
    child = os.read(read, 12)
    os.close(read)
    os.waitpid(pid, 0)
    parent = b"".join(client_frame(0x2, b"")[2:6] for _ in range(3))
    assert len(child) == 12 and child != parent
