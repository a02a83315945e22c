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

__all__ = ["FoldedRecords", "FoldedWarning"]


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


class FoldedRecords(logging.Filter):
    """The same folding for another library's log lines (a logging filter): a record whose
    message is one of ``messages`` passes at most once per interval for each message, and
    the next one that passes says how many were folded in."""

    def __init__(
        self,
        messages: frozenset[str],
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.messages = messages
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._folded: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        if not isinstance(msg, str) or msg not in self.messages:
            return True
        now = self._clock()
        last = self._last.get(msg)
        if last is not None and now - last < self.interval_s:
            self._folded[msg] = self._folded.get(msg, 0) + 1
            return False
        folded = self._folded.pop(msg, 0)
        if last is not None and folded:
            record.msg = f"{msg} (and {folded} more like it in the last {now - last:.0f} s)"
        self._last[msg] = now
        return True
