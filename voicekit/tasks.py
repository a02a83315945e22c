"""Start a call's tasks so that cancelling them frees the call at once.

A call ends by cancelling its tasks. anyio's asyncio task groups keep the
``CancelledError`` that ended a child in a reference cycle (the handler that inspects the
finished task re-raises it and holds it in a local, and its traceback then holds that
handler's frame). That exception's traceback reaches every frame the child was running,
and each frame keeps its locals: the session, its provider streams, its queued audio.
Reference counting then cannot free any of it, and the whole call waits for a full
garbage collection, which with 200 calls up stalls the event loop for about 100 ms
(benchmarks/load.py).

:func:`spawn` runs the task through a wrapper that lets go of the task's arguments when
it is cancelled and, on asyncio, ends the task normally: with no exception left for the
task group to re-raise, no cycle forms at all. On trio (tests) the cancellation is
re-raised without its traceback. Any other exception keeps its traceback: it is logged,
and it ends the call anyway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import sniffio
from anyio.abc import TaskGroup

__all__ = ["detached", "first_error", "released_on_cancel", "spawn"]


async def released_on_cancel(func: Callable[..., Awaitable[Any]], *args: Any) -> None:
    """Await ``func(*args)``; if it is cancelled, let go of everything it referenced."""
    try:
        await func(*args)
    except anyio.get_cancelled_exc_class() as exc:
        del func, args
        if sniffio.current_async_library() == "asyncio":
            # Ending normally leaves no exception for the task group to re-raise: the
            # cancellation has done its work (this task is over), and asyncio keeps
            # nothing of it. Re-raised, even bare, it would sit in a reference cycle.
            return
        exc.__context__ = None  # an exception being handled when the cancel came
        raise exc.with_traceback(None)  # noqa: B904 (the same exception, not a new one)


def spawn(tg: TaskGroup, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
    """``tg.start_soon(func, *args)``, with :func:`released_on_cancel` around it."""
    tg.start_soon(released_on_cancel, func, *args, name=getattr(func, "__qualname__", None))


def detached() -> None:
    """What a call's callbacks are replaced with once it is over: a callable that
    returns nothing and holds nothing, so no reference cycle keeps the call alive."""


def first_error(exc: BaseException) -> BaseException:
    """The error a task group wrapped (its first, at any depth): what a log line should
    name, where ``ExceptionGroup: unhandled errors in a TaskGroup`` says nothing."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
