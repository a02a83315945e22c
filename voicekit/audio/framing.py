"""Cut a byte stream into fixed-duration frames.

Telephony wants audio in fixed 20 ms frames (160 bytes of 8 kHz μ-law), but providers send
chunks of any size. The framer keeps the remainder between calls, so no byte is lost or
duplicated, and every frame it returns has exactly the same length.
"""

from __future__ import annotations

from voicekit.audio.formats import AudioFormat
from voicekit.errors import AudioFormatError

__all__ = ["Framer"]


class Framer:
    """Accumulate bytes of ``fmt`` and hand them out as ``frame_ms`` frames."""

    def __init__(self, fmt: AudioFormat, frame_ms: float = 20.0) -> None:
        self.format = fmt
        self.frame_ms = frame_ms
        self.frame_bytes = fmt.bytes_for_ms(frame_ms)
        if self.frame_bytes <= 0:
            raise AudioFormatError(f"a {frame_ms} ms frame of {fmt} holds no whole sample")
        self._pending = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held back, waiting to complete a frame."""
        return len(self._pending)

    def push(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add bytes; return every complete frame now available, oldest first."""
        if not data:
            return []
        self._pending += data
        size = self.frame_bytes
        count = len(self._pending) // size
        if not count:
            return []
        view = memoryview(self._pending)
        frames = [bytes(view[i * size : (i + 1) * size]) for i in range(count)]
        view.release()
        del self._pending[: count * size]
        return frames

    def flush(self, *, pad: bool = True) -> bytes | None:
        """Return the remainder as a last frame (padded with silence unless ``pad=False``).

        Returns ``None`` when nothing is pending. A remainder that is not a whole number of
        samples is cut down to whole samples: half a sample cannot be played.
        """
        if not self._pending:
            return None
        block = self.format.block_size
        whole = len(self._pending) - len(self._pending) % block
        tail = bytes(self._pending[:whole])
        self._pending.clear()
        if not tail:
            return None
        if pad:
            tail += self.format.silence_byte * (self.frame_bytes - len(tail))
        return tail

    def clear(self) -> None:
        """Drop the remainder (barge-in: queued audio must not play)."""
        self._pending.clear()
