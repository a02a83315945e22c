"""Process-level tuning for a long-running voice server: the event loop and the heap.

A voice server spends most of its CPU in the event loop itself: every call moves 50
media frames a second each way, and each one is a socket read or write plus a wake-up.
uvloop does that work in C and cut the server's CPU by about 15 % in benchmarks/load.py,
so it is used whenever it is installed (the ``server`` extra installs it).

The garbage collector's full collections walk every object in the process, and after
importing pydantic, starlette, numpy and the plugins that is hundreds of thousands of
objects that live forever: a full collection stalled the server for 137 ms under load,
which the caller hears as a gap in the agent's audio. :func:`freeze_startup_heap` moves
everything that exists once the server is up into the permanent generation, so later
collections only walk objects created by calls.

Those are still many: with 200 calls up a full collection walks ~130,000 objects and stalls
the loop for ~80 ms. CPython starts one after every 10 collections of the middle
generation once the long-lived heap has grown by a quarter, which under that load is every
few seconds while calls come and go. A call's objects are freed by reference counting as
it ends (:mod:`voicekit.tasks` keeps cancellation from pinning them), so full collections
only have the odd small cycle to find: the server spaces them ``FULL_COLLECTION_SPACING``
middle-generation collections apart (about half a minute at that load) instead.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
from typing import Any

from voicekit.config.sections import EventLoop
from voicekit.errors import ConfigError

__all__ = ["FULL_COLLECTION_SPACING", "EventLoop", "backend_options", "freeze_startup_heap"]

FULL_COLLECTION_SPACING = 100  # middle-generation collections between full ones; CPython: 10

logger = logging.getLogger(__name__)


def backend_options(choice: EventLoop) -> dict[str, Any]:
    """anyio ``backend_options`` for ``[server] event_loop``."""
    available = importlib.util.find_spec("uvloop") is not None
    if choice == "uvloop" and not available:
        raise ConfigError(
            "server.event_loop = 'uvloop' but uvloop is not installed: "
            "pip install 'voicekit[server]' (or set server.event_loop = 'auto')"
        )
    return {"use_uvloop": True} if choice != "asyncio" and available else {}


def freeze_startup_heap() -> int:
    """Collect once, exempt every surviving object from future collections, and space out
    full collections.

    Call when start-up is complete (imports done, app and providers built). Returns how
    many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_SPACING)
    frozen = gc.get_freeze_count()
    logger.info("froze %d start-up objects out of garbage collection", frozen)
    return frozen
