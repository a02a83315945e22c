"""What to do about silence and call length: a pure decision, so it is easy to test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["SilenceAction", "SilencePolicy"]

SilenceAction = Literal["wait", "prompt", "hang_up_idle", "hang_up_max_length"]


@dataclass(frozen=True, slots=True)
class SilencePolicy:
    idle_timeout_s: float
    prompts: int  # how many idle prompts there are
    max_call_seconds: float

    def decide(
        self, *, now: float, started: float, last_activity: float, quiet: bool, prompted: int
    ) -> tuple[SilenceAction, float]:
        """The action due now, or ``("wait", when)`` with the time to look again.

        ``quiet`` means neither side is speaking; ``prompted`` is how many idle prompts
        have been said since the caller last spoke.
        """
        max_end = started + self.max_call_seconds
        if now >= max_end:
            return "hang_up_max_length", now
        idle_at = last_activity + self.idle_timeout_s
        if quiet and now >= idle_at:
            return ("prompt" if prompted < self.prompts else "hang_up_idle"), now
        wake = min(max_end, idle_at if quiet else now + self.idle_timeout_s)
        return "wait", max(wake, now + 0.02)
