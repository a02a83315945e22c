"""Warnings that anyone on the internet can cause, folded so they cannot flood the log.

A refused media connection or a webhook with a bad signature is worth a warning, but a
client repeating one a thousand times a second would write a thousand lines a second.
:class:`FoldedWarning` writes the first at once and then at most one per interval,
saying how many it folded in; the folded ones go to the debug level.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["FoldedWarning"]


class FoldedWarning:
    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._clock = clock
        self._last: float | None = None
        self.folded = 0  # since the last warning written

    def warning(self, msg: str, *args: object) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self.interval_s:
            self.folded += 1
            self.logger.debug(msg, *args)
            return
        if self._last is not None and self.folded:
            msg += f" (and {self.folded} more like it in the last %.0f s)"
            args = (*args, now - self._last)
        self.logger.warning(msg, *args)
        self._last, self.folded = now, 0
