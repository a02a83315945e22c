"""Run an ASGI app on an ephemeral loopback port, inside the caller's task group.

Emulators are Starlette apps served by uvicorn in process: real sockets, real HTTP and
WebSocket framing, nothing but 127.0.0.1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup

__all__ = ["Faults", "LoopbackServer"]

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

    Exceptions the app lets escape to uvicorn are kept in ``app_errors``: uvicorn would
    only log them (and tests silence its log), so a handler that fails on every hang-up
    would otherwise go unnoticed.
    """

    def __init__(self, app: Any, *, lifespan: bool = False) -> None:
        self.app = app
        self.lifespan = lifespan
        self.port = 0
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
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        import uvicorn  # test-only dependency, imported when an emulator starts

        from voicekit.server._uvicorn import MediaWebSocketProtocol, Server

        config = uvicorn.Config(
            self._recording_errors,
            interface="asgi3",
            host="127.0.0.1",
            port=0,
            log_level="critical",
            lifespan="on" if self.lifespan else "off",
            ws=MediaWebSocketProtocol,
            ws_per_message_deflate=False,
            ws_ping_interval=None,
        )
        self._server = Server(config)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._server.serve)
        with anyio.fail_after(10):
            while not self._server.started:  # noqa: ASYNC110  (uvicorn offers no event)
                await anyio.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None
        self._server.should_exit = True
        self._server.force_exit = True
        await self._tg.__aexit__(exc_type, exc, tb)
