"""Streaming sample-rate conversion on 16-bit PCM, built on libsoxr.

State is kept across chunks, so a stream cut into 20 ms pieces resamples as it would in
one piece: no clicks at chunk edges, and the total output length over the whole stream is
exact once :meth:`Resampler.flush` has been called.

libsoxr runs in float32 and voicekit rounds back to int16 itself: soxr's own int16 output
adds random dither, which would make the same input give different bytes on every run.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import soxr

from voicekit.errors import AudioFormatError

__all__ = ["Resampler"]

Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]
_TO_FLOAT = np.float32(1 / 32768)


def _to_pcm(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1) to int16 little-endian bytes, rounded and clipped."""
    scaled = np.rint(samples * 32768.0)
    np.clip(scaled, -32768, 32767, out=scaled)
    return scaled.astype("<i2").tobytes()


class Resampler:
    """Convert a stream of 16-bit little-endian PCM from one sample rate to another.

    ``process`` returns what is ready now (libsoxr holds back a few milliseconds of filter
    delay); ``flush`` returns the rest at the end of the stream. After ``flush`` the
    resampler is ready for a new stream.
    """

    def __init__(
        self, from_rate: int, to_rate: int, *, channels: int = 1, quality: Quality = "HQ"
    ) -> None:
        for name, rate in (("from_rate", from_rate), ("to_rate", to_rate)):
            if not isinstance(rate, int) or rate <= 0:
                raise AudioFormatError(f"{name} must be a positive whole number, got {rate!r}")
        if channels < 1:
            raise AudioFormatError(f"channels must be at least 1, got {channels!r}")
        self.from_rate = from_rate
        self.to_rate = to_rate
        self.channels = channels
        self._quality = quality
        self._stream = self._new_stream()

    def _new_stream(self) -> soxr.ResampleStream:
        return soxr.ResampleStream(
            self.from_rate, self.to_rate, self.channels, dtype="float32", quality=self._quality
        )

    def _samples(self, pcm: bytes | bytearray | memoryview) -> np.ndarray:
        block = 2 * self.channels
        if len(pcm) % block:
            raise AudioFormatError(
                f"resampler needs whole {block}-byte PCM sample frames, got {len(pcm)} bytes"
            )
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        samples *= _TO_FLOAT
        return samples.reshape(-1, self.channels) if self.channels > 1 else samples

    def process(self, pcm: bytes | bytearray | memoryview) -> bytes:
        """Resample one chunk; returns the output available so far (may be empty)."""
        if not pcm:
            return b""
        return _to_pcm(self._stream.resample_chunk(self._samples(pcm), last=False))

    def flush(self) -> bytes:
        """End the stream: return the held-back tail and reset for a new stream."""
        empty = np.zeros((0, self.channels) if self.channels > 1 else 0, dtype=np.float32)
        out = self._stream.resample_chunk(empty, last=True)
        self._stream = self._new_stream()
        return _to_pcm(out)
