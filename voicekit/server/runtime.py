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

Those are still many: with 250 calls up a full collection walks the objects of every
call in progress and stalls the loop for 40 to 170 ms, which 250 callers hear at once.
A call's objects are freed by reference counting as it ends (:mod:`voicekit.tasks` keeps
cancellation from pinning them), so a full collection has only the small cycles some
libraries leave per call to find (an HTTP response and its stream, a retry loop's
state, a closed connection's protocol and parser). So a server started by
``voicekit serve`` turns automatic full collections off and makes them itself
(:class:`IdleCollector`): when the last call ends (no caller to hear it), and, as a
bound on memory, after every ``FULL_COLLECTION_EVERY_CALLS`` calls if it is never idle.
Young and middle generations are collected as usual.

Cycles that calls do not leave are bounded too: when the heap has grown by
``GROWTH_BLOCKS`` allocated blocks and doubled since the last full collection, the next
middle-generation collection is a full one, whatever the calls. A flood of abandoned
pipelined HTTP requests once grew a server to 1.8 GB of such cycles, and the full
collection that finally came at a call's end held the loop for 4 s; growth is checked
on every 16th middle collection (``sys.getallocatedblocks``, well under a millisecond).
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import sys
import time
from typing import Any

from voicekit.config.sections import EventLoop
from voicekit.errors import ConfigError

__all__ = [
    "FULL_COLLECTION_EVERY_CALLS",
    "EventLoop",
    "IdleCollector",
    "backend_options",
    "collector",
    "freeze_startup_heap",
]

FULL_COLLECTION_EVERY_CALLS = 1000
NEVER = 1 << 30  # middle-generation collections between automatic full ones: none
GROWTH_BLOCKS = 2_000_000  # blocks (about 100-200 MB) allocated since a full collection
_GROWTH_CHECK_EVERY = 16  # middle-generation collections

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
    collector.take_over()
    frozen = gc.get_freeze_count()
    logger.info("froze %d start-up objects out of garbage collection", frozen)
    if _report_slow_collections not in gc.callbacks:
        gc.callbacks.append(_report_slow_collections)
    return frozen


class IdleCollector:
    """Full garbage collections at the moments no caller can hear them (module docstring).

    Inactive until :meth:`take_over` (``voicekit serve`` calls it): an app embedded in
    another keeps the interpreter's own collection policy.
    """

    def __init__(
        self, every_calls: int = FULL_COLLECTION_EVERY_CALLS, growth_blocks: int = GROWTH_BLOCKS
    ) -> None:
        self.every_calls = every_calls
        self.growth_blocks = growth_blocks
        self.active = False
        self.ended_since = 0  # calls ended since the last full collection
        self.collections = 0
        self.growth_collections = 0  # full collections the heap's growth asked for
        self._blocks_after_full = 0
        self._middle_seen = 0

    def take_over(self) -> None:
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, NEVER)
        self._blocks_after_full = sys.getallocatedblocks()
        if self._watch_growth not in gc.callbacks:
            gc.callbacks.append(self._watch_growth)
        self.active = True

    def give_back(self, thresholds: tuple[int, int, int]) -> None:
        """Hand collection back to the interpreter with ``thresholds`` (tests, embedders)."""
        self.active = False
        if self._watch_growth in gc.callbacks:
            gc.callbacks.remove(self._watch_growth)
        gc.set_threshold(*thresholds)

    def _watch_growth(self, phase: str, info: dict[str, int]) -> None:
        """A gc callback: after a full collection, note the heap's size; after every 16th
        middle one, make the next middle collection a full one if the heap has grown too
        much (a callback cannot collect itself: the collector is running)."""
        if phase != "stop" or not self.active:
            return
        generation = info.get("generation")
        young, middle, oldest = gc.get_threshold()
        if generation == 2:
            self._blocks_after_full = sys.getallocatedblocks()
            if oldest != NEVER:
                gc.set_threshold(young, middle, NEVER)
            return
        if generation != 1 or oldest != NEVER:
            return
        self._middle_seen += 1
        if self._middle_seen % _GROWTH_CHECK_EVERY:
            return
        blocks = sys.getallocatedblocks()
        grown = blocks - self._blocks_after_full
        if grown >= self.growth_blocks and blocks >= 2 * self._blocks_after_full:
            logger.warning(
                "the heap grew by %d blocks since the last full garbage collection: "
                "collecting fully now, with calls up",
                grown,
            )
            self.growth_collections += 1
            gc.set_threshold(young, middle, 0)

    def call_ended(self, calls_left: int) -> None:
        """A call ended and ``calls_left`` are still up: collect if that is now cheap for
        callers (none left) or if too many calls have ended since the last time."""
        self._ended(collect_now=calls_left == 0)

    def connection_refused(self) -> None:
        """A media connection was refused (a bad token, a second socket, an ended call): it
        leaves the same library cycles as a call (the HTTP side of its upgrade, the
        parser), so refused connections count toward a full collection too. A flood of
        them grew a server by 5 MB a second while a call was up."""
        self._ended(collect_now=False)

    def _ended(self, *, collect_now: bool) -> None:
        if not self.active:
            return
        self.ended_since += 1
        if collect_now or self.ended_since >= self.every_calls:
            self.ended_since = 0
            self.collections += 1
            gc.collect()


collector = IdleCollector()

SLOW_COLLECTION_MS = 20.0
_collection_started = 0.0


def _report_slow_collections(phase: str, info: dict[str, int]) -> None:
    """Log a collection that held the event loop long enough for callers to hear it."""
    global _collection_started
    if phase == "start":
        _collection_started = time.perf_counter()
        return
    ms = (time.perf_counter() - _collection_started) * 1000
    if ms >= SLOW_COLLECTION_MS:
        logger.warning(
            "a generation-%d garbage collection held the event loop %.0f ms (%d collected)",
            info.get("generation", -1),
            ms,
            info.get("collected", 0),
        )
