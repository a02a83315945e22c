"""Convert a stream from any :class:`AudioFormat` to any other, in process.

The path is decode (G.711 to PCM) → channel mix → resample → encode, and each step runs
only when the formats differ in that respect. When source and target are equal the
converter is a pass-through that returns the very same bytes object: this is the
zero-transcode path that lets ElevenLabs ``ulaw_8000`` audio go to a PCMU call untouched.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from voicekit.audio.formats import AudioFormat
from voicekit.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voicekit.audio.resample import Resampler

__all__ = ["AudioConverter"]

_Codec = Callable[[bytes], bytes]
_DECODERS: dict[str, _Codec] = {"mulaw": ulaw_decode, "alaw": alaw_decode}
_ENCODERS: dict[str, _Codec] = {"mulaw": ulaw_encode, "alaw": alaw_encode}


def _mix_channels(pcm: bytes, src: int, dst: int) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, src)
    if dst == 1:
        mixed: np.ndarray = samples.mean(axis=1).round().astype("<i2")
        return mixed.tobytes()
    if src == 1:
        return np.repeat(samples, dst, axis=1).astype("<i2", copy=False).tobytes()
    # Between two multi-channel layouts there is no single right mix: keep the first
    # channels and repeat the last one to fill.
    idx = [min(i, src - 1) for i in range(dst)]
    return samples[:, idx].astype("<i2", copy=False).tobytes()


class AudioConverter:
    """Streaming converter from ``source`` to ``target`` format.

    Chunks may be any size: an incomplete trailing sample is held until the next chunk, so
    a provider that splits a 16-bit sample across two messages loses nothing.
    """

    def __init__(self, source: AudioFormat, target: AudioFormat) -> None:
        self.source = source
        self.target = target
        self.passthrough = source == target
        self._carry = b""
        self._resampler = (
            Resampler(source.sample_rate, target.sample_rate, channels=target.channels)
            if source.sample_rate != target.sample_rate
            else None
        )

    def process(self, data: bytes) -> bytes:
        """Convert one chunk; returns the converted bytes available so far."""
        if self.passthrough:
            return data
        if self._carry:
            data = self._carry + data
            self._carry = b""
        block = self.source.block_size
        cut = len(data) - len(data) % block
        if cut != len(data):
            data, self._carry = data[:cut], data[cut:]
        if not data:
            return b""
        return self._encode(self._to_target_pcm(data))

    def flush(self) -> bytes:
        """End of stream: return what the resampler held back (a partial sample is dropped)."""
        self._carry = b""
        if self.passthrough or self._resampler is None:
            return b""
        return self._encode(self._resampler.flush())

    def _to_target_pcm(self, data: bytes) -> bytes:
        pcm = _DECODERS[self.source.encoding](data) if self.source.encoding != "pcm_s16le" else data
        if self.source.channels != self.target.channels:
            pcm = _mix_channels(pcm, self.source.channels, self.target.channels)
        if self._resampler is not None:
            pcm = self._resampler.process(pcm)
        return pcm

    def _encode(self, pcm: bytes) -> bytes:
        if not pcm or self.target.encoding == "pcm_s16le":
            return pcm
        return _ENCODERS[self.target.encoding](pcm)
