"""Background tasks owned by an object, stoppable from any task and within a timeout.

A provider session reads its socket and sends keepalives in the background for as long
as it is open. Those tasks cannot live in a task group entered by ``__aenter__``: a task
group belongs to the task that entered it and must be exited there, properly nested, so
``with anyio.fail_after(2): await session.aclose()`` from another task (or a timeout
around ``__aexit__``) fails with "Attempted to exit cancel scope in a different task",
and an ``aclose()`` without ``__aexit__`` leaves the tasks running.

So each background task runs as a task of the event loop itself (an asyncio task, or a
trio system task), inside a cancel scope of its own. :meth:`BackgroundTasks.aclose`
cancels those scopes and waits until every task has finished: it may be called from any
task, any number of times, and under any timeout. A task that fails is logged and
reported to ``on_error`` (so the owner can fail the work that depended on it instead of
waiting forever); it never cancels its owner's caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Self

import anyio

from voicekit.clock import running_trio

__all__ = ["BackgroundTasks"]

logger = logging.getLogger(__name__)

_asyncio_tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references


def _spawn_loop_task(run: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Start ``run()`` as a task of the running event loop, owned by no task group."""
    trio = running_trio()
    if trio is not None:
        trio.lowlevel.spawn_system_task(run)
        return
    task = asyncio.get_running_loop().create_task(run())
    _asyncio_tasks.add(task)
    task.add_done_callback(_asyncio_tasks.discard)


class BackgroundTasks:
    """Tasks started with :meth:`start`, stopped together by :meth:`aclose`."""

    def __init__(self, owner: str, *, on_error: Callable[[Exception], None] | None = None):
        self.owner = owner
        self.on_error = on_error
        self._scopes: set[anyio.CancelScope] = set()
        self._idle = anyio.Event()
        self._idle.set()
        self._stopped = False

    async def __aenter__(self) -> Self:
        return self

    @property
    def running(self) -> int:
        return len(self._scopes)

    def start(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``func(*args)`` in the background until it returns or :meth:`stop`."""
        if self._stopped:
            raise RuntimeError(f"{self.owner}: background tasks were already stopped")
        scope = anyio.CancelScope()
        if not self._scopes:
            self._idle = anyio.Event()
        self._scopes.add(scope)

        async def run() -> None:
            await self._run(scope, func, args)

        _spawn_loop_task(run)

    async def _run(
        self, scope: anyio.CancelScope, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
    ) -> None:
        try:
            with scope:
                try:
                    await func(*args)
                except Exception as exc:
                    logger.exception(
                        "%s: background task %s failed",
                        self.owner,
                        getattr(func, "__name__", func),
                    )
                    if self.on_error is not None:
                        self.on_error(exc)
        finally:
            del func, args  # nothing of the owner stays reachable from a finished task
            self._scopes.discard(scope)
            if not self._scopes:
                self._idle.set()

    def stop(self) -> None:
        """Cancel every task without waiting; safe from anywhere, any number of times."""
        self._stopped = True
        for scope in list(self._scopes):
            scope.cancel()

    async def aclose(self) -> None:
        """Cancel every task and wait until all have finished (from any task)."""
        self.stop()
        await self._idle.wait()
        self.on_error = None  # usually the owner's bound method: a cycle kept until a full GC

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
