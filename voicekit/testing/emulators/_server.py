"""Run an ASGI app on an ephemeral loopback port, inside the caller's task group.

Emulators are Starlette apps served by uvicorn in process: real sockets, real HTTP and
WebSocket framing, nothing but 127.0.0.1.
"""

from __future__ import annotations

import functools
import logging
import socket
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup

__all__ = ["Faults", "LoopbackServer", "ServedEmulator"]

logger = logging.getLogger(__name__)


@dataclass
class Faults:
    """Failures an emulator can inject, for resilience tests.

    - ``refuse_handshake``: answer WebSocket upgrades (and REST calls) with this HTTP status.
    - ``drop_after``: drop each connection abruptly after sending this many messages
      (no close frame), until ``drops`` connections have been dropped (None: every one).
    - ``delay_ms``: wait this long before every message the emulator sends.
    - ``malformed_every``: before every Nth message, send a malformed one.
    """

    refuse_handshake: int | None = None
    drop_after: int | None = None
    drops: int | None = 1
    delay_ms: float = 0.0
    malformed_every: int | None = None
    dropped: int = 0

    def should_drop(self, sent: int) -> bool:
        if self.drop_after is None or sent < self.drop_after:
            return False
        return self.drops is None or self.dropped < self.drops


class LoopbackServer:
    """``async with LoopbackServer(app) as server:`` serves ``app`` on 127.0.0.1:<port>.

    The port is bound when the object is made, so its URL is known before the app exists:
    a voicekit app needs its own public URL in its settings
    (``server = LoopbackServer(); settings = ...(public_url=server.http_url);
    server.app = create_app(settings)``). ``limits`` (a ``ServerSettings``) serves the app
    the way ``voicekit serve`` does, with its request deadlines and size limits;
    ``graceful`` runs the app's lifespan shutdown on exit, as a real server stopping does.

    Exceptions the app lets escape to uvicorn are kept in ``app_errors``: uvicorn would
    only log them (and tests silence its log), so a handler that fails on every hang-up
    would otherwise go unnoticed.
    """

    def __init__(
        self,
        app: Any = None,
        *,
        lifespan: bool = False,
        limits: Any | None = None,
        graceful: bool = False,
    ) -> None:
        self.app = app
        self.lifespan = lifespan
        self.graceful = graceful  # on exit, run the app's lifespan shutdown (else skip it)
        self.limits = limits
        self._socket: socket.socket | None = None
        self.app_errors: list[BaseException] = []
        self._server: Any = None
        self._tg: TaskGroup | None = None

    async def _recording_errors(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            self.app_errors.append(exc)
            raise

    @property
    def port(self) -> int:
        """The loopback port, bound on first use (and kept until the server exits)."""
        if self._socket is None:
            # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose
            # protocol says TCP. Without it, Nagle holds each small write (an SSE event, a
            # WebSocket message) until the peer's delayed ACK: +20-40 ms on a stream.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.bind(("127.0.0.1", 0))
            self._socket = sock
        return int(self._socket.getsockname()[1])

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        import uvicorn  # test-only dependency, imported when an emulator starts

        from voicekit.server._uvicorn import Server, server_config
        from voicekit.server.media_socket import MediaWebSocketProtocol

        if self.app is None:
            raise RuntimeError("LoopbackServer: set .app before entering")
        options: dict[str, Any] = {
            "interface": "asgi3",
            "log_level": "critical",
            "lifespan": "on" if self.lifespan else "off",
            "ws_ping_interval": None,
        }
        if self.limits is not None:
            config = server_config(
                self._recording_errors, self.limits, host="127.0.0.1", port=self.port, **options
            )
        else:
            config = uvicorn.Config(
                self._recording_errors,
                host="127.0.0.1",
                port=self.port,
                ws=MediaWebSocketProtocol,
                ws_per_message_deflate=False,
                **options,
            )
        self._server = Server(config)
        self._server.fast_exit = True
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        port = self.port  # binds the socket if nothing asked for the port yet
        assert self._socket is not None and config.port == port
        self._tg.start_soon(functools.partial(self._server.serve, sockets=[self._socket]))
        with anyio.fail_after(10):
            while not self._server.started:  # noqa: ASYNC110  (uvicorn offers no event)
                await anyio.sleep(0.005)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None
        self._server.should_exit = True
        self._server.force_exit = not self.graceful
        try:
            await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


class ServedEmulator:
    """An emulator served by its ``server``: ``async with Emulator(...) as emulator:``."""

    server: LoopbackServer

    async def __aenter__(self) -> Self:
        await self.server.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.server.__aexit__(*exc)
