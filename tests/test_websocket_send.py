"""voicekit.websocket.send_message: direct writes when the socket is free, send() otherwise."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import websockets
from websockets.protocol import State

from voicekit.websocket import send_message

pytestmark = pytest.mark.anyio


async def test_messages_arrive_in_order_without_awaiting_send() -> None:
    received: list[str | bytes] = []

    async def collect(ws: Any) -> None:
        async for message in ws:
            received.append(message)

    async with websockets.serve(collect, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
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


async def test_a_failed_write_aborts_and_raises_oserror() -> None:
    connection = FakeConnection()
    with pytest.raises(OSError, match="peer went away"):
        await send_message(connection, b"audio")
    assert connection.aborted and connection.sent == []
