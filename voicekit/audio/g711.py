"""G.711 μ-law and A-law codecs on 16-bit little-endian PCM.

The tables are built from the Sun Microsystems g711.c reference algorithm, the same one
CPython's ``audioop`` used, so results are bit-exact with Python 3.11's ``audioop``
(``tests/test_g711.py`` checks all 65,536 samples and all 256 codes). ``audioop`` itself is
gone in Python 3.13, and a table lookup is also faster than it was.

Encoding is one numpy fancy-index into a 65,536-entry table; decoding indexes a 256-entry
table. Tables are built once, on first use, so importing voicekit stays cheap.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

from voicekit.errors import AudioFormatError

__all__ = ["alaw_decode", "alaw_encode", "ulaw_decode", "ulaw_encode"]

_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], np.int32)
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], np.int32)
_ULAW_CLIP = 8159
_ULAW_BIAS = 0x84
_PCM = np.dtype("<i2")


def _all_samples() -> npt.NDArray[np.int32]:
    """Every int16 value, ordered by its unsigned bit pattern (the encode-table index)."""
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)


@cache
def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    pcm = _all_samples() >> 2  # audioop works on 14-bit magnitude
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(_ULAW_SEG_END, mag, side="left")
    code = (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


@cache
def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(_PCM)


@cache
def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    pcm = _all_samples() >> 3  # audioop works on 13-bit magnitude
    negative = pcm < 0
    mask = np.where(negative, 0x55, 0xD5)
    mag = np.where(negative, -pcm - 1, pcm)
    seg = np.searchsorted(_ALAW_SEG_END, mag, side="left")
    shift = np.where(seg < 2, 1, np.minimum(seg, 7))
    code = (np.minimum(seg, 7) << 4) | ((mag >> shift) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


@cache
def _alaw_decode_table() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(_PCM)


def _pcm_samples(pcm: bytes | bytearray | memoryview, codec: str) -> npt.NDArray[np.uint16]:
    if len(pcm) % 2:
        raise AudioFormatError(
            f"{codec} encode needs 16-bit PCM: {len(pcm)} bytes is an odd length "
            "(a sample was split across chunks?)"
        )
    return np.frombuffer(pcm, dtype="<u2")


def ulaw_encode(pcm: bytes | bytearray | memoryview) -> bytes:
    """Encode 16-bit little-endian PCM to G.711 μ-law, one byte per sample."""
    return bytes(_ulaw_encode_table()[_pcm_samples(pcm, "μ-law")])


def ulaw_decode(data: bytes | bytearray | memoryview) -> bytes:
    """Decode G.711 μ-law to 16-bit little-endian PCM."""
    return _ulaw_decode_table()[np.frombuffer(data, dtype=np.uint8)].tobytes()


def alaw_encode(pcm: bytes | bytearray | memoryview) -> bytes:
    """Encode 16-bit little-endian PCM to G.711 A-law, one byte per sample."""
    return bytes(_alaw_encode_table()[_pcm_samples(pcm, "A-law")])


def alaw_decode(data: bytes | bytearray | memoryview) -> bytes:
    """Decode G.711 A-law to 16-bit little-endian PCM."""
    return _alaw_decode_table()[np.frombuffer(data, dtype=np.uint8)].tobytes()
