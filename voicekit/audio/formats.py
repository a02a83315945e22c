"""Audio formats: what bytes mean, and the arithmetic of durations and frames.

An :class:`AudioFormat` is a value (frozen, hashable, comparable): two components agree on
a format by comparing them, which is how format negotiation decides that bytes can pass
straight through with no conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from voicekit.errors import AudioFormatError

__all__ = [
    "ALAW_8K",
    "PCM_8K",
    "PCM_16K",
    "PCM_24K",
    "ULAW_8K",
    "AudioFormat",
    "Encoding",
]

Encoding = Literal["pcm_s16le", "mulaw", "alaw"]
_ENCODINGS: tuple[str, ...] = get_args(Encoding)
_SAMPLE_WIDTH = {"pcm_s16le": 2, "mulaw": 1, "alaw": 1}
# The byte that decodes to (near) zero amplitude, used to pad frames with silence.
_SILENCE_BYTE = {"pcm_s16le": b"\x00", "mulaw": b"\xff", "alaw": b"\xd5"}


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """Encoding, sample rate and channel count of a raw (headerless) audio stream.

    ``block_size`` is the bytes of one sample frame (one sample of every channel: the
    unit audio comes in), ``bytes_per_second`` the stream's byte rate."""

    encoding: Encoding
    sample_rate: int
    channels: int = 1
    # Derived once: these are read for every 20 ms frame of every call.
    block_size: int = field(init=False, repr=False, compare=False)
    bytes_per_second: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.encoding not in _ENCODINGS:
            raise AudioFormatError(
                f"unsupported audio encoding {self.encoding!r}; "
                f"voicekit handles {', '.join(_ENCODINGS)}"
            )
        if not isinstance(self.sample_rate, int) or not 1000 <= self.sample_rate <= 384_000:
            raise AudioFormatError(
                f"sample_rate must be a whole number of Hz between 1000 and 384000, "
                f"got {self.sample_rate!r}"
            )
        if not isinstance(self.channels, int) or not 1 <= self.channels <= 8:
            raise AudioFormatError(f"channels must be 1..8, got {self.channels!r}")
        block = _SAMPLE_WIDTH[self.encoding] * self.channels
        object.__setattr__(self, "block_size", block)  # frozen: set once, here
        object.__setattr__(self, "bytes_per_second", block * self.sample_rate)

    @property
    def sample_width(self) -> int:
        """Bytes per sample of one channel."""
        return _SAMPLE_WIDTH[self.encoding]

    @property
    def silence_byte(self) -> bytes:
        return _SILENCE_BYTE[self.encoding]

    def bytes_for_ms(self, ms: float) -> int:
        """Bytes of ``ms`` milliseconds, rounded down to whole sample frames."""
        samples = int(self.sample_rate * ms / 1000)
        return samples * self.block_size

    def duration_ms(self, nbytes: int) -> float:
        """How long ``nbytes`` of this format play, in milliseconds."""
        return nbytes * 1000.0 / self.bytes_per_second

    def silence(self, ms: float) -> bytes:
        return self.silence_byte * self.bytes_for_ms(ms)

    def check(self, data: bytes | bytearray | memoryview) -> None:
        """Raise :class:`AudioFormatError` unless ``data`` holds whole sample frames."""
        if len(data) % self.block_size:
            raise AudioFormatError(
                f"{len(data)} bytes is not a whole number of {self.block_size}-byte "
                f"samples for {self}"
            )

    def __str__(self) -> str:
        ch = "" if self.channels == 1 else f"/{self.channels}ch"
        return f"{self.encoding}@{self.sample_rate}{ch}"


ULAW_8K = AudioFormat("mulaw", 8000)
ALAW_8K = AudioFormat("alaw", 8000)
PCM_8K = AudioFormat("pcm_s16le", 8000)
PCM_16K = AudioFormat("pcm_s16le", 16000)
PCM_24K = AudioFormat("pcm_s16le", 24000)
