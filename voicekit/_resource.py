"""Base for objects that hold a connection: ``async with`` closes them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

from voicekit.background import BackgroundTasks

__all__ = ["AsyncResource"]


class AsyncResource(ABC):
    """Something to close exactly once, usable as ``async with obj: ...``.

    A resource that reads its connection in the background registers its
    :class:`BackgroundTasks` with :meth:`own`; closing (``aclose`` or ``__aexit__``, from
    any task, under any timeout) stops them and waits until they have finished.
    """

    _owned_tasks: BackgroundTasks | None = None

    def own(self, tasks: BackgroundTasks) -> BackgroundTasks:
        self._owned_tasks = tasks
        return tasks

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.aclose()
        finally:
            await self.stop_owned_tasks()

    async def stop_owned_tasks(self) -> None:
        """Stop the background tasks registered with :meth:`own` and wait for them."""
        if self._owned_tasks is not None:
            await self._owned_tasks.aclose()

    @abstractmethod
    async def aclose(self) -> None:
        """Release the connection and anything else held."""
