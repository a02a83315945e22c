"""When did the caller's audio at a given position reach us?

STT providers report the end of speech as a position in the audio stream ("speech ended
at 4,180 ms"). Mapping that position back to the moment the audio arrived gives the true
start of the turn's latency clock, instead of the later moment the STT said so.
"""

from __future__ import annotations

import bisect

__all__ = ["InboundClock"]


class InboundClock:
    def __init__(self, *, keep: int = 4096) -> None:
        self._ends: list[float] = []  # cumulative audio ms at the end of each chunk
        self._times: list[float] = []  # when that chunk arrived
        self._keep = keep

    def received(self, duration_ms: float, at: float) -> None:
        total = self._ends[-1] if self._ends else 0.0
        self._ends.append(total + duration_ms)
        self._times.append(at)
        if len(self._ends) > self._keep:  # a bounded window: the last ~80 s of 20 ms frames
            half = self._keep // 2
            del self._ends[:half], self._times[:half]

    def arrival(self, audio_ms: float | None) -> float | None:
        """Arrival time of the chunk holding position ``audio_ms`` (None if unknown)."""
        if audio_ms is None or not self._ends:
            return None
        i = bisect.bisect_left(self._ends, audio_ms - 1e-6)
        return self._times[min(i, len(self._times) - 1)]
