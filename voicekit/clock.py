"""The running event loop's clock, as a plain function for hot paths.

``anyio.current_time()`` finds the running backend on every call; on a call's media path
that lookup runs several times per 20 ms frame, per call. :func:`loop_clock` does it
once and returns the loop's own clock (asyncio's ``loop.time`` or trio's
``current_time``, which honours a test's virtual clock), for objects that live in one
event loop, as a call does.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import anyio

__all__ = ["loop_clock", "running_trio"]


def running_trio() -> Any:
    """The trio module if this code runs under trio (anyio's other backend), else None."""
    trio = sys.modules.get("trio")
    if trio is None:
        return None
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return None
    return trio


def loop_clock() -> Callable[[], float]:
    """The clock of the event loop running now (``anyio.current_time`` outside one)."""
    trio = running_trio()
    if trio is not None:
        clock: Callable[[], float] = trio.current_time
        return clock
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:
        return anyio.current_time
