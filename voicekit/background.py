"""Background tasks owned by an object that is used with ``async with``.

A provider session that reads its socket in the background must start tasks in
``__aenter__`` and stop them in ``aclose``. Entering a task group in ``__aenter__`` is
fine, but its cancel scope then wraps the caller's own code: cancelling it would cancel
the caller too. Here each task runs in a cancel scope of its own, and ``stop`` cancels
only those. A task that fails is logged and reported to ``on_error`` (so the owner can
fail the work that depended on it, instead of waiting forever), never allowed to cancel
its owner's caller.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup

from voicekit.tasks import released_on_cancel

__all__ = ["BackgroundTasks"]

logger = logging.getLogger(__name__)


class BackgroundTasks:
    def __init__(self, owner: str, *, on_error: Callable[[Exception], None] | None = None):
        self.owner = owner
        self.on_error = on_error
        self._tg: TaskGroup | None = None
        self._scopes: list[anyio.CancelScope] = []

    async def __aenter__(self) -> Self:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    def start(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        assert self._tg is not None, "enter BackgroundTasks before starting tasks"
        scope = anyio.CancelScope()
        self._scopes.append(scope)
        self._tg.start_soon(released_on_cancel, self._run, scope, func, args)

    async def _run(
        self, scope: anyio.CancelScope, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
    ) -> None:
        with scope:
            try:
                await func(*args)
            except Exception as exc:
                logger.exception(
                    "%s: background task %s failed", self.owner, getattr(func, "__name__", func)
                )
                if self.on_error is not None:
                    self.on_error(exc)
        self._scopes.remove(scope)

    def stop(self) -> None:
        """Cancel every task; safe to call from anywhere, any number of times."""
        for scope in self._scopes:
            scope.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if self._tg is not None:
            tg, self._tg = self._tg, None
            await tg.__aexit__(exc_type, exc, tb)
        self.on_error = None  # usually the owner's bound method: a cycle kept until a full GC
