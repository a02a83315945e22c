"""The process's worker threads for speech engines: CPU work never runs on the event loop.

Piper's synthesis and pocketsphinx's decoding are CPU-bound C and ONNX code (run with
the GIL released). Each call to them runs in a worker thread; a capacity limiter per
engine bounds how many run at once (one per core by default), so busy calls share the
machine instead of oversubscribing it, and the event loop keeps pacing audio for every
call. Recognition has limiters of its own: its jobs are short and decide when the caller
has finished, so they never wait behind a sentence being synthesised.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

__all__ = ["run_cpu", "set_cpu_threads"]

T = TypeVar("T")

# One limiter per engine per running event loop (a limiter belongs to its loop).
_limiters: RunVar[dict[str, anyio.CapacityLimiter]] = RunVar("voicekit_local_cpu")
_threads = max(1, os.cpu_count() or 1)


def set_cpu_threads(count: int) -> None:
    """How many speech-engine calls may run at once in this process (from now on)."""
    global _threads
    _threads = max(1, count)


def _get_limiter(engine: str) -> anyio.CapacityLimiter:
    try:
        limiters = _limiters.get()
    except LookupError:
        limiters = {}
        _limiters.set(limiters)
    if engine not in limiters:
        limiters[engine] = anyio.CapacityLimiter(_threads)
    return limiters[engine]


async def run_cpu(func: Callable[..., T], *args: object, engine: str = "tts") -> T:
    """``func(*args)`` in a worker thread, within ``engine``'s CPU limit."""
    return await anyio.to_thread.run_sync(func, *args, limiter=_get_limiter(engine))
