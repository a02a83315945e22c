"""A uvicorn server that leaves signal handling to voicekit.

uvicorn's ``serve()`` installs its own SIGINT/SIGTERM handlers; voicekit drains calls on
SIGTERM itself (and emulators inside tests must not touch signals at all).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator

import uvicorn

__all__ = ["Server"]


class Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
