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


class _Fold:
    """One kind of line: the first passes, then at most one per interval, each saying how
    many were held back since the last one that passed."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.last: float | None = None
        self.folded = 0  # since the last line that passed

    def admit(self, now: float) -> str | None:
        """None: fold this one. Otherwise what to add to the line that passes."""
        last = self.last
        if last is not None and now - last < self.interval_s:
            self.folded += 1
            return None
        note = (
            f" (and {self.folded} more like it in the last {now - last:.0f} s)"
            if (last is not None and self.folded)
            else ""
        )
        self.last, self.folded = now, 0
        return note


class FoldedWarning:
    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self._clock = clock
        self._fold = _Fold(interval_s)

    def warning(self, msg: str, *args: object) -> None:
        note = self._fold.admit(self._clock())
        if note is None:
            self.logger.debug(msg, *args)
            return
        self.logger.warning(msg + note, *args)


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
        self._clock = clock
        self._folds = {msg: _Fold(interval_s) for msg in messages}

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        if not isinstance(msg, str) or msg not in self.messages:
            return True
        note = self._folds[msg].admit(self._clock())
        if note is None:
            return False
        record.msg = msg + note
        return True
