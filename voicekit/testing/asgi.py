"""A server app driven in memory: its lifespan, HTTP and WebSocket routes, with no socket.

A test that talks to ``create_app`` over loopback runs on the wall clock: the phone's
20 ms line, the playout and every timeout take real time. Driven in memory, the same app
(routes, media token, Telnyx media stream, :class:`~voicekit.server.CallManager`, the
call) runs on whatever clock the event loop has, such as trio's ``MockClock``, so a call
that lasts a minute takes milliseconds and a behaviour test waits for nothing.

``ASGIWebSocket`` has the part of a ``websockets`` client connection the phone simulator
uses (``send``, ``recv``, ``async for``, ``close``, ``close_code``) and closes the way
one does: ``ConnectionClosedOK`` after a normal close, ``ConnectionClosedError``
otherwise, an ``async for`` that ends quietly only after a normal close. An exception
the app lets escape is what a server makes of it: logged, kept in ``app_error``, and an
abnormal closure (1006) for the client. What it does not exercise is the server's own
WebSocket protocol (framing, limits), which ``voicekit serve`` tests cover over loopback.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from websockets.frames import OK_CLOSE_CODES, Close

__all__ = ["ASGIWebSocket", "asgi_lifespan", "open_asgi_websocket"]

logger = logging.getLogger(__name__)

Message = dict[str, Any]
ABNORMAL_CLOSURE = 1006
OPEN_TIMEOUT_S = 10.0  # as websockets.connect's open_timeout


@asynccontextmanager
async def asgi_lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
    """``async with asgi_lifespan(app) as state:`` runs ``app``'s lifespan as a server
    would: startup on entry, shutdown on exit. A failed startup or shutdown raises
    ``RuntimeError`` with the app's message. An app without lifespan support (it raises
    or returns at once) runs without one, as uvicorn's default does. ``state`` is the
    lifespan state, for :func:`open_asgi_websocket`'s ``state``."""
    state: dict[str, Any] = {}
    to_app, app_receives = anyio.create_memory_object_stream[Message](math.inf)
    app_sends, from_app = anyio.create_memory_object_stream[Message](math.inf)
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
    failure: list[BaseException] = []

    async def run() -> None:
        async with app_sends:
            try:
                await app(scope, app_receives.receive, app_sends.send)
            except Exception as exc:
                failure.append(exc)

    problem: RuntimeError | None = None  # raised once the app's task is done with
    async with anyio.create_task_group() as tg, to_app, from_app:
        tg.start_soon(run)
        await to_app.send({"type": "lifespan.startup"})
        try:
            supported = await _lifespan_reply(from_app, "startup", failure) is not None
        except RuntimeError as exc:
            problem = exc
        else:
            if not supported:
                logger.info("the app does not support the ASGI lifespan: running without it")
            try:
                yield state
            finally:
                if supported:
                    with anyio.CancelScope(shield=True):
                        await to_app.send({"type": "lifespan.shutdown"})
                        try:
                            await _lifespan_reply(from_app, "shutdown", failure)
                        except RuntimeError as exc:
                            problem = exc
        tg.cancel_scope.cancel()  # an app still running after its lifespan ended
    if problem is not None:
        raise problem


async def _lifespan_reply(
    replies: MemoryObjectReceiveStream[Message], phase: str, failure: list[BaseException]
) -> Message | None:
    """The app's answer to ``phase``: None if it does not do lifespans (it ended without
    answering); ``RuntimeError`` if it reported the phase failed."""
    try:
        reply = await replies.receive()
    except anyio.EndOfStream:
        if phase == "startup":
            return None
        raise RuntimeError(f"the app ended without completing its {phase}") from (
            failure[0] if failure else None
        )
    if reply["type"] != f"lifespan.{phase}.complete":
        message = reply.get("message") or "no message"
        raise RuntimeError(f"the app's lifespan {phase} failed: {message}") from (
            failure[0] if failure else None
        )
    return reply


class ASGIWebSocket:
    """The client end of a WebSocket connection to an ASGI app, in memory.

    ``close_code`` and ``close_reason`` are None and "" while the connection is open, then
    the code and reason of the closing handshake (1006 when the app's side ended without
    one). ``app_error`` is the exception the app's side ended with, if any."""

    def __init__(
        self, to_app: MemoryObjectSendStream[Message], from_app: MemoryObjectReceiveStream[Message]
    ) -> None:
        self._to_app = to_app
        self._from_app = from_app
        self.close_code: int | None = None
        self.close_reason = ""
        self.app_error: BaseException | None = None
        self._handshake: tuple[Close | None, Close | None] = (None, None)  # received, sent
        self._app_closed_first = False

    async def send(self, message: str | bytes | Iterable[str] | Iterable[bytes]) -> None:
        """Send a text (``str``) or binary (bytes-like) message, or one made of an
        iterable's pieces, as ``websockets`` does; ``ConnectionClosed`` once closed."""
        event = _receive_event(message)  # a TypeError first, as websockets checks
        if self.close_code is not None:
            raise self._closed()
        try:
            await self._to_app.send(event)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise self._gone() from None

    async def recv(self) -> str | bytes:
        """The app's next message; ``ConnectionClosed`` when the connection is closed."""
        while self.close_code is None:
            try:
                message = await self._from_app.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                self._set_closed(ABNORMAL_CLOSURE, "", handshake=False)
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
        except ConnectionClosedOK:
            raise StopAsyncIteration from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from the client's side: the app receives ``websocket.disconnect``."""
        if self.close_code is not None:
            return
        self._set_closed(code, reason, handshake=True)
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
                self._set_closed(ABNORMAL_CLOSURE, "", handshake=False)
            else:
                if message["type"] == "websocket.close":
                    self._closed_by(message)
        return self._closed()

    def _closed_by(self, close: Message) -> None:
        """The app sent ``close``: it closed first."""
        code = close.get("code")
        if self.close_code is None:
            self._app_closed_first = True
        self._set_closed(1000 if code is None else int(code), str(close.get("reason") or ""))

    def _set_closed(self, code: int, reason: str, *, handshake: bool = True) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            frame = Close(code, reason) if handshake else None
            self._handshake = (frame, frame)  # the peer echoes the close it was sent

    def _closed(self) -> ConnectionClosed:
        received, sent = self._handshake
        normal = (
            received is not None
            and sent is not None
            and received.code in OK_CLOSE_CODES
            and sent.code in OK_CLOSE_CODES
        )
        order = None if received is None or sent is None else self._app_closed_first
        return (ConnectionClosedOK if normal else ConnectionClosedError)(received, sent, order)


def _receive_event(message: Any) -> Message:
    """The ``websocket.receive`` event of what ``send`` was given."""
    if isinstance(message, str):
        return {"type": "websocket.receive", "text": message}
    if isinstance(message, bytes | bytearray | memoryview):
        return {"type": "websocket.receive", "bytes": bytes(message)}
    if isinstance(message, Iterable) and not isinstance(message, Mapping):
        pieces = list(message)
        if all(isinstance(p, str) for p in pieces):
            return {"type": "websocket.receive", "text": "".join(pieces)}
        if all(isinstance(p, bytes | bytearray | memoryview) for p in pieces):
            return {"type": "websocket.receive", "bytes": b"".join(bytes(p) for p in pieces)}
        raise TypeError("a message's pieces must be all str or all bytes-like")
    raise TypeError(f"a message is str, bytes-like or an iterable of them, not {type(message)}")


async def open_asgi_websocket(
    app: Any,
    url: str,
    *,
    start_soon: Callable[[Callable[[], Awaitable[None]]], object],
    headers: Mapping[str, str] | None = None,
    state: Mapping[str, Any] | None = None,
    open_timeout: float | None = OPEN_TIMEOUT_S,
) -> ASGIWebSocket:
    """Connect to ``app`` at ``url``'s path and query; returns once the app accepted.
    Raises ``ConnectionClosed`` if it closed or failed instead, and ``TimeoutError`` if
    it did neither within ``open_timeout`` seconds (on the event loop's clock).

    The app's side of the connection runs in a task ``start_soon`` starts (a task group's
    ``start_soon``), which should outlive the client, as a server's does. An exception
    it raises is logged and kept in the socket's ``app_error``, never raised into that
    task group. ``state`` is the lifespan's (:func:`asgi_lifespan`)."""
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
    socket = ASGIWebSocket(to_app, from_app)

    async def receive() -> Message:
        try:
            return await app_receives.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return {"type": "websocket.disconnect", "code": ABNORMAL_CLOSURE}

    async def run() -> None:
        async with app_sends, app_receives:
            try:
                await app(scope, receive, app_sends.send)
            except Exception as exc:
                socket.app_error = exc
                logger.exception("the app failed on the WebSocket %s", scope["path"])

    start_soon(run)
    await to_app.send({"type": "websocket.connect"})
    try:
        with anyio.fail_after(open_timeout):
            first = await from_app.receive()
    except anyio.EndOfStream:
        first = None
    except TimeoutError:
        raise TimeoutError(
            f"the app neither accepted nor closed the WebSocket {scope['path']} "
            f"within {open_timeout} s"
        ) from None
    if first is None or first["type"] != "websocket.accept":
        if first is None or first["type"] != "websocket.close":
            socket._set_closed(ABNORMAL_CLOSURE, "", handshake=False)
        else:
            socket._closed_by(first)
        raise socket._closed() from socket.app_error
    return socket
