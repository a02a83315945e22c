"""The process's worker threads for speech engines: CPU work never runs on the event loop.

Piper's synthesis and pocketsphinx's decoding are CPU-bound C and ONNX code. Each call
to them runs in a worker thread, and one capacity limiter per process bounds how many
run at once (one per core by default), so two busy calls share the machine instead of
oversubscribing it, and the event loop keeps pacing audio for every call.
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

# One limiter per running event loop (a limiter belongs to its loop).
_limiter: RunVar[anyio.CapacityLimiter] = RunVar("voicekit_local_cpu")
_threads = max(1, os.cpu_count() or 1)


def set_cpu_threads(count: int) -> None:
    """How many speech-engine calls may run at once in this process (from now on)."""
    global _threads
    _threads = max(1, count)


def _get_limiter() -> anyio.CapacityLimiter:
    try:
        return _limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(_threads)
        _limiter.set(limiter)
        return limiter


async def run_cpu(func: Callable[..., T], *args: object) -> T:
    """``func(*args)`` in a worker thread, within the process's CPU limit."""
    return await anyio.to_thread.run_sync(func, *args, limiter=_get_limiter())
