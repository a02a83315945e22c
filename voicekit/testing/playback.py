"""The far end of a media stream, as Telnyx plays it: one model for every test double.

Audio plays back to back in real time; a mark is due when the audio sent before it has
finished playing (at once when nothing is playing); ``clear`` stops playback and makes
every pending mark due at once. The in-memory media stream and the phone simulator both
use this, so the two cannot drift apart on what "heard" means.
"""

from __future__ import annotations

__all__ = ["FarEndPlayback"]


class FarEndPlayback:
    def __init__(self) -> None:
        self.end = 0.0  # when the audio received so far will have finished playing
        self._marks: list[tuple[float, str]] = []

    def audio(self, now: float, seconds: float) -> tuple[float, float]:
        """Audio arrived; returns when it starts and stops playing."""
        start = max(now, self.end)
        self.end = start + seconds
        return start, self.end

    def mark(self, now: float, name: str) -> None:
        self._marks.append((max(now, self.end), name))

    def clear(self, now: float) -> None:
        self.end = now
        self._marks = [(now, name) for _, name in self._marks]

    @property
    def pending_marks(self) -> int:
        return len(self._marks)

    def take_due(self, now: float) -> list[str]:
        """Names of the marks due by ``now``, in order; they are removed."""
        due = sorted(m for m in self._marks if m[0] <= now)
        for mark in due:
            self._marks.remove(mark)
        return [name for _, name in due]

    def next_due(self) -> float | None:
        return min((due for due, _ in self._marks), default=None)
