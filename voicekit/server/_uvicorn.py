"""uvicorn tuned for voicekit: signals left to voicekit, reading paused only under load.

- uvicorn's ``serve()`` installs its own SIGINT/SIGTERM handlers; voicekit drains calls on
  SIGTERM itself (and emulators inside tests must not touch signals at all).
- uvicorn's WebSocket protocol pauses reading after every message and resumes when the
  app takes it: two epoll calls per 20 ms media frame on every call. ``MediaWebSocketProtocol``
  pauses only when ``HIGH_WATER`` messages are waiting, which keeps backpressure against
  a flooding client without the per-frame churn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["HIGH_WATER", "MediaWebSocketProtocol", "Server"]

HIGH_WATER = 32


class Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class MediaWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-io WebSocket protocol, pausing reads only above ``HIGH_WATER``.

    uvicorn pauses when ``read_paused`` is false and resumes when it is true and the
    queue is empty. Reporting "already paused" while few messages wait skips the pause;
    the matching resume is then a no-op on the transport.
    """

    _really_paused = False

    @property
    def read_paused(self) -> bool:
        queue = getattr(self, "queue", None)
        return self._really_paused or (queue is not None and queue.qsize() < HIGH_WATER)

    @read_paused.setter
    def read_paused(self, value: bool) -> None:
        self._really_paused = value
