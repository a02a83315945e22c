"""How many reconnects a provider connection may make before the failure is real.

A dropped socket is usually a blip, and reconnecting keeps the call going. A connection
that fails again right after every reconnect is an outage: looping on it would hide the
problem and burn time, so after ``limit`` reconnects within ``window_s`` the error is
surfaced instead.
"""

from __future__ import annotations

import anyio

__all__ = ["ReconnectBudget"]


class ReconnectBudget:
    """At most ``limit`` reconnects within ``window_s``; see the module docstring."""

    def __init__(self, limit: int = 3, window_s: float = 30.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: list[float] = []

    def spend(self) -> bool:
        """Record a reconnect; False when the budget for the window is used up."""
        now = anyio.current_time()
        self._times = [t for t in self._times if now - t < self.window_s]
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True
