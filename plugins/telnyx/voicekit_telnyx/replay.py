"""Webhook event ids already acted on, kept for as long as their signature could be
replayed.

A signed webhook stays valid for ``webhook_tolerance_s`` either side of its timestamp, so
whoever captures one can send it again within that window. Remembering a fixed number of
ids was not enough: after that many other events (10,000 took 12 s of signed traffic) a
captured ``call.initiated`` was answered again. Ids are kept by age instead, for twice
the tolerance after they were first seen, with a bound on memory far above what Telnyx
sends (a warning says when the bound, not the age, drops one).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["MAX_SEEN_EVENTS", "SeenEvents"]

logger = logging.getLogger(__name__)

MAX_SEEN_EVENTS = 200_000  # about 30 MB; Telnyx sends a few events per call


class SeenEvents:
    def __init__(
        self,
        tolerance_s: float,
        *,
        limit: int = MAX_SEEN_EVENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keep_s = 2 * tolerance_s  # first seen at most tolerance_s before it was signed
        self.limit = limit
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # id -> when first seen
        self._warned = False

    def first_time(self, event_id: str) -> bool:
        """True the first time ``event_id`` is seen within the replay window."""
        now = self._clock()
        seen = self._seen
        while seen and now - next(iter(seen.values())) > self.keep_s:
            seen.popitem(last=False)
        if event_id in seen:
            return False
        seen[event_id] = now
        if len(seen) > self.limit:
            seen.popitem(last=False)
            if not self._warned:
                self._warned = True
                logger.warning(
                    "more than %d Telnyx webhook events within %.0f s: the oldest are "
                    "forgotten before their signatures expire",
                    self.limit,
                    self.keep_s,
                )
        return True

    def __len__(self) -> int:
        return len(self._seen)
