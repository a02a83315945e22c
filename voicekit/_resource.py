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
    :class:`BackgroundTasks` with :meth:`own`. ``aclose`` may be called from anywhere and
    only stops them; the task group itself is exited here, in ``__aexit__``, where it is
    properly nested.
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
            if self._owned_tasks is not None:
                await self._owned_tasks.__aexit__(None, None, None)

    @abstractmethod
    async def aclose(self) -> None:
        """Release the connection and anything else held."""
