"""Which event loop ``voicekit serve`` runs on.

A voice server spends most of its CPU in the event loop itself: every call moves 50
media frames a second each way, and each one is a socket read or write plus a wake-up.
uvloop does that work in C and cut the server's CPU by about 15 % in benchmarks/load.py,
so it is used whenever it is installed (the ``server`` extra installs it).
"""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

from voicekit.errors import ConfigError

__all__ = ["EventLoop", "backend_options"]

EventLoop = Literal["auto", "uvloop", "asyncio"]


def backend_options(choice: EventLoop) -> dict[str, Any]:
    """anyio ``backend_options`` for ``[server] event_loop``."""
    available = importlib.util.find_spec("uvloop") is not None
    if choice == "uvloop" and not available:
        raise ConfigError(
            "server.event_loop = 'uvloop' but uvloop is not installed: "
            "pip install 'voicekit[server]' (or set server.event_loop = 'auto')"
        )
    return {"use_uvloop": True} if choice != "asyncio" and available else {}
