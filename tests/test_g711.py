"""G.711 codecs are bit-exact with the reference (CPython 3.11's audioop, Sun g711.c)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from voicekit.audio import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voicekit.errors import AudioFormatError

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # stdlib up to 3.12; the audioop-lts package on 3.13+ (test extra)

ALL_SAMPLES = np.arange(65536, dtype=np.uint16).view("<i2").tobytes()
ALL_CODES = bytes(range(256))


def test_ulaw_encode_matches_audioop_for_every_sample() -> None:
    assert ulaw_encode(ALL_SAMPLES) == audioop.lin2ulaw(ALL_SAMPLES, 2)


def test_alaw_encode_matches_audioop_for_every_sample() -> None:
    assert alaw_encode(ALL_SAMPLES) == audioop.lin2alaw(ALL_SAMPLES, 2)


def test_ulaw_decode_matches_audioop_for_every_code() -> None:
    assert ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_decode_matches_audioop_for_every_code() -> None:
    assert alaw_decode(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


@pytest.mark.parametrize("encode,decode", [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_round_trip_is_stable(encode, decode) -> None:  # type: ignore[no-untyped-def]
    # Decoding then re-encoding any code gives the same code (the codec is idempotent).
    # μ-law has two codes for zero (0x7F and 0xFF); both decode to 0, which encodes to 0xFF.
    again = encode(decode(ALL_CODES))
    diffs = [c for c, a in zip(ALL_CODES, again, strict=True) if c != a]
    assert diffs in ([], [0x7F])


def test_empty_input_gives_empty_output() -> None:
    assert ulaw_encode(b"") == b"" and ulaw_decode(b"") == b""
    assert alaw_encode(b"") == b"" and alaw_decode(b"") == b""


@pytest.mark.parametrize("encode", [ulaw_encode, alaw_encode])
def test_odd_length_pcm_is_a_clear_error(encode) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AudioFormatError, match="odd length"):
        encode(b"\x00\x01\x02")


def test_accepts_bytearray_and_memoryview() -> None:
    pcm = ALL_SAMPLES[:320]
    assert ulaw_encode(bytearray(pcm)) == ulaw_encode(memoryview(pcm)) == ulaw_encode(pcm)
