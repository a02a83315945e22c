"""A server app driven in memory: its lifespan, HTTP and WebSocket routes, with no socket.

A test that talks to ``create_app`` over loopback runs on the wall clock: the phone's
20 ms line, the playout and every timeout take real time. Driven in memory, the same app
(routes, media token, Telnyx media stream, :class:`~voicekit.server.CallManager`, the
call) runs on whatever clock the event loop has, such as trio's ``MockClock``, so a call
that lasts a minute takes milliseconds and a behaviour test waits for nothing.

``ASGIWebSocket`` has the part of a ``websockets`` client connection the phone simulator
uses (``send``, ``recv``, ``async for``, ``close``, ``close_code``), and raises
``websockets.ConnectionClosed`` the way one does, so code written for a real socket runs
unchanged. What it does not exercise is the server's own WebSocket protocol (framing,
limits), which ``voicekit serve`` tests cover over loopback.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

__all__ = ["ASGIWebSocket", "asgi_lifespan", "open_asgi_websocket"]

Message = dict[str, Any]
ABNORMAL_CLOSURE = 1006


@asynccontextmanager
async def asgi_lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
    """Run ``app``'s lifespan: startup on entry, shutdown on exit, as a server would.
    Yields the lifespan state, which each connection's scope gets a copy of."""
    state: dict[str, Any] = {}
    to_app, app_receives = anyio.create_memory_object_stream[Message](math.inf)
    app_sends, from_app = anyio.create_memory_object_stream[Message](math.inf)
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}

    async def run() -> None:
        async with app_sends:
            await app(scope, app_receives.receive, app_sends.send)

    async with anyio.create_task_group() as tg, to_app, from_app:
        tg.start_soon(run)
        await to_app.send({"type": "lifespan.startup"})
        await _expect(from_app, "lifespan.startup.complete")
        try:
            yield state
        finally:
            with anyio.CancelScope(shield=True):
                await to_app.send({"type": "lifespan.shutdown"})
                await _expect(from_app, "lifespan.shutdown.complete")


async def _expect(replies: MemoryObjectReceiveStream[Message], wanted: str) -> None:
    reply = await replies.receive()
    if reply["type"] != wanted:
        raise RuntimeError(f"the app answered {reply['type']}: {reply.get('message', '')}")


class ASGIWebSocket:
    """The client end of a WebSocket connection to an ASGI app, in memory."""

    def __init__(
        self, to_app: MemoryObjectSendStream[Message], from_app: MemoryObjectReceiveStream[Message]
    ) -> None:
        self._to_app = to_app
        self._from_app = from_app
        self.close_code: int | None = None
        self.close_reason = ""

    async def send(self, message: str | bytes) -> None:
        """Send a text (``str``) or binary message; ``ConnectionClosed`` once closed."""
        if self.close_code is not None:
            raise self._closed()
        key = "text" if isinstance(message, str) else "bytes"
        try:
            await self._to_app.send({"type": "websocket.receive", key: message})
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise self._gone() from None

    async def recv(self) -> str | bytes:
        """The app's next message; ``ConnectionClosed`` when it closed the connection."""
        while self.close_code is None:
            try:
                message = await self._from_app.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                self._set_closed(ABNORMAL_CLOSURE, "")
                break
            if message["type"] == "websocket.send":
                text = message.get("text")
                return text if text is not None else bytes(message.get("bytes") or b"")
            if message["type"] == "websocket.close":
                self._closed_by(message)
                await self._disconnect()
        raise self._closed()

    def __aiter__(self) -> ASGIWebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from the client's side: the app receives ``websocket.disconnect``."""
        if self.close_code is not None:
            return
        self._set_closed(code, reason)
        await self._disconnect()

    async def _disconnect(self) -> None:
        """Tell the app the connection is gone; it reads nothing after that."""
        try:
            await self._to_app.send({"type": "websocket.disconnect", "code": self.close_code})
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        self._to_app.close()

    def _gone(self) -> ConnectionClosed:
        """The app's side ended: the close it sent (unread messages before it are lost,
        as a real socket's are once its peer closed), or an abnormal closure."""
        while self.close_code is None:
            try:
                message = self._from_app.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                self._set_closed(ABNORMAL_CLOSURE, "")
            else:
                if message["type"] == "websocket.close":
                    self._closed_by(message)
        return self._closed()

    def _closed_by(self, close: Message) -> None:
        self._set_closed(int(close.get("code", 1000)), str(close.get("reason") or ""))

    def _set_closed(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason

    def _closed(self) -> ConnectionClosed:
        return ConnectionClosed(Close(self.close_code or ABNORMAL_CLOSURE, self.close_reason), None)


async def open_asgi_websocket(
    app: Any,
    url: str,
    *,
    start_soon: Callable[[Callable[[], Awaitable[None]]], object],
    headers: Mapping[str, str] | None = None,
    state: Mapping[str, Any] | None = None,
) -> ASGIWebSocket:
    """Connect to ``app`` at ``url``'s path and query; returns once the app accepted, or
    raises ``ConnectionClosed`` if it closed instead. The app's side of the connection
    runs in a task ``start_soon`` starts (a task group's ``start_soon``), which should
    outlive the client, as a server's does. ``state`` is the lifespan's
    (:func:`asgi_lifespan`)."""
    parts = urlsplit(url)
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "scheme": "wss" if parts.scheme in ("wss", "https") else "ws",
        "http_version": "1.1",
        "path": parts.path or "/",
        "raw_path": (parts.path or "/").encode(),
        "query_string": parts.query.encode(),
        "root_path": "",
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in {"host": parts.netloc or "testserver", **(headers or {})}.items()
        ],
        "client": ("127.0.0.1", 50000),
        "server": (parts.hostname or "testserver", parts.port or 80),
        "subprotocols": [],
        "state": dict(state or {}),
    }
    to_app, app_receives = anyio.create_memory_object_stream[Message](math.inf)
    app_sends, from_app = anyio.create_memory_object_stream[Message](math.inf)

    async def receive() -> Message:
        try:
            return await app_receives.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return {"type": "websocket.disconnect", "code": ABNORMAL_CLOSURE}

    async def run() -> None:
        async with app_sends, app_receives:
            await app(scope, receive, app_sends.send)

    start_soon(run)
    await to_app.send({"type": "websocket.connect"})
    socket = ASGIWebSocket(to_app, from_app)
    try:
        first = await from_app.receive()
    except anyio.EndOfStream:
        first = {"type": "websocket.close", "code": ABNORMAL_CLOSURE}
    if first["type"] != "websocket.accept":
        socket._closed_by(first)
        raise socket._closed()
    return socket
