"""Formats, the streaming resampler, the framer and the converter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from voicekit.audio import (
    ALAW_8K,
    PCM_8K,
    PCM_16K,
    ULAW_8K,
    AudioConverter,
    AudioFormat,
    Framer,
    Resampler,
    ulaw_decode,
    ulaw_encode,
)
from voicekit.errors import AudioFormatError


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * 32767 * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes()


def run_stream(resampler: Resampler, pcm: bytes, chunk: int) -> bytes:
    out = bytearray()
    for i in range(0, len(pcm), chunk):
        out += resampler.process(pcm[i : i + chunk])
    out += resampler.flush()
    return bytes(out)


def snr_db(reference: bytes, signal: bytes, trim: int) -> float:
    a = np.frombuffer(reference, "<i2").astype(np.float64)[trim:-trim]
    b = np.frombuffer(signal, "<i2").astype(np.float64)[trim:-trim]
    noise = ((a - b) ** 2).sum()
    return math.inf if noise == 0 else float(10 * np.log10((a**2).sum() / noise))


# -- AudioFormat ------------------------------------------------------------------------


def test_format_arithmetic() -> None:
    assert ULAW_8K.bytes_for_ms(20) == 160
    assert PCM_16K.bytes_for_ms(20) == 640
    assert AudioFormat("pcm_s16le", 16000, 2).bytes_for_ms(20) == 1280
    assert PCM_8K.duration_ms(320) == pytest.approx(20.0)
    assert ULAW_8K.silence(20) == b"\xff" * 160
    assert ALAW_8K.silence(10) == b"\xd5" * 80
    assert ULAW_8K == AudioFormat("mulaw", 8000) and hash(ULAW_8K) == hash(
        AudioFormat("mulaw", 8000)
    )
    assert str(PCM_16K) == "pcm_s16le@16000"


@pytest.mark.parametrize(
    "args,match",
    [
        (("opus", 48000), "unsupported audio encoding 'opus'"),
        (("mulaw", 0), "sample_rate"),
        (("mulaw", 8000.5), "sample_rate"),
        (("pcm_s16le", 16000, 0), "channels"),
    ],
)
def test_bad_formats_are_clear_errors(args: tuple, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(AudioFormatError, match=match):
        AudioFormat(*args)


def test_check_rejects_partial_samples() -> None:
    PCM_16K.check(b"\x00\x00")
    with pytest.raises(AudioFormatError, match="not a whole number"):
        PCM_16K.check(b"\x00\x00\x00")


# -- Resampler -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "from_rate,to_rate",
    [(16000, 8000), (8000, 16000), (24000, 8000), (22050, 16000), (44100, 8000)],
)
@pytest.mark.parametrize("chunk_ms", [20, 7, 1000])
def test_stream_output_length_is_exact(from_rate: int, to_rate: int, chunk_ms: int) -> None:
    seconds = 2.0
    pcm = tone(440, from_rate, seconds)
    chunk = int(from_rate * chunk_ms / 1000) * 2
    out = run_stream(Resampler(from_rate, to_rate), pcm, chunk)
    assert len(out) // 2 == round(len(pcm) // 2 * to_rate / from_rate)


def test_tone_round_trip_16k_8k_16k_keeps_snr_above_40db() -> None:
    pcm = tone(1000, 16000, 3.0)
    down = run_stream(Resampler(16000, 8000), pcm, 640)
    back = run_stream(Resampler(8000, 16000), down, 320)
    assert len(back) == len(pcm)
    assert snr_db(pcm, back, trim=800) >= 40.0


def test_chunking_does_not_change_the_result() -> None:
    pcm = tone(700, 16000, 1.0)
    whole = run_stream(Resampler(16000, 8000), pcm, len(pcm))
    pieces = run_stream(Resampler(16000, 8000), pcm, 38)
    assert (
        np.abs(
            np.frombuffer(whole, "<i2").astype(int) - np.frombuffer(pieces, "<i2").astype(int)
        ).max()
        <= 1
    )


def test_flush_resets_for_a_new_stream() -> None:
    r = Resampler(16000, 8000)
    pcm = tone(500, 16000, 0.5)
    first = run_stream(r, pcm, 640)
    second = run_stream(r, pcm, 640)
    assert first == second


def test_resampler_errors() -> None:
    with pytest.raises(AudioFormatError, match="from_rate"):
        Resampler(0, 8000)
    with pytest.raises(AudioFormatError, match="2-byte"):
        Resampler(16000, 8000).process(b"\x00\x00\x00")
    assert Resampler(16000, 8000).process(b"") == b""


def test_stereo_resampling_keeps_channels_apart() -> None:
    left = np.frombuffer(tone(300, 16000, 0.5), "<i2")
    right = np.zeros_like(left)
    stereo = np.stack([left, right], axis=1).astype("<i2").tobytes()
    out = np.frombuffer(run_stream(Resampler(16000, 8000, channels=2), stereo, 1280), "<i2")
    out = out.reshape(-1, 2)
    assert np.abs(out[:, 1]).max() <= 1 and np.abs(out[:, 0]).max() > 10000


# -- Framer ----------------------------------------------------------------------------


def test_framer_cuts_fixed_frames_and_keeps_the_remainder() -> None:
    framer = Framer(ULAW_8K, 20)
    data = bytes(range(256)) * 3  # 768 bytes
    frames = []
    for i in range(0, len(data), 37):
        frames += framer.push(data[i : i + 37])
    assert all(len(f) == 160 for f in frames) and len(frames) == 4
    assert framer.pending == 768 - 640
    tail = framer.flush()
    assert tail is not None and len(tail) == 160
    assert b"".join(frames) + tail[:128] == data
    assert tail[128:] == b"\xff" * 32
    assert framer.flush() is None


def test_framer_flush_without_padding_drops_half_samples() -> None:
    framer = Framer(PCM_16K, 20)
    framer.push(b"\x01\x02\x03")
    assert framer.flush(pad=False) == b"\x01\x02"


def test_framer_clear_and_bad_frame() -> None:
    framer = Framer(PCM_8K)
    framer.push(b"\x00" * 100)
    framer.clear()
    assert framer.pending == 0 and framer.push(b"") == []
    with pytest.raises(AudioFormatError, match="no whole sample"):
        Framer(PCM_8K, 0.01)


# -- AudioConverter --------------------------------------------------------------------


def test_same_format_is_passthrough_without_copy() -> None:
    conv = AudioConverter(ULAW_8K, AudioFormat("mulaw", 8000))
    data = bytes(range(160))
    assert conv.passthrough
    assert conv.process(data) is data
    assert conv.flush() == b""


def test_mulaw_8k_to_pcm_16k_and_back() -> None:
    pcm = tone(400, 8000, 1.0, amplitude=0.3)
    mu = ulaw_encode(pcm)
    up = AudioConverter(ULAW_8K, PCM_16K)
    wide = b"".join(up.process(mu[i : i + 160]) for i in range(0, len(mu), 160)) + up.flush()
    assert len(wide) == len(pcm) * 2
    down = AudioConverter(PCM_16K, ULAW_8K)
    narrow = b"".join(down.process(wide[i : i + 640]) for i in range(0, len(wide), 640))
    narrow += down.flush()
    assert len(narrow) == len(mu)
    assert snr_db(ulaw_decode(mu), ulaw_decode(narrow), trim=400) > 25


def test_converter_carries_a_split_sample() -> None:
    pcm = tone(300, 8000, 0.1)
    conv = AudioConverter(PCM_8K, ULAW_8K)
    out = conv.process(pcm[:161]) + conv.process(pcm[161:])
    assert out == ulaw_encode(pcm)


def test_converter_codec_change_same_rate() -> None:
    pcm = tone(300, 8000, 0.1)
    conv = AudioConverter(ULAW_8K, ALAW_8K)
    from voicekit.audio import alaw_decode

    out = conv.process(ulaw_encode(pcm))
    assert len(out) == len(pcm) // 2
    assert snr_db(pcm, alaw_decode(out), trim=10) > 25


def test_converter_mixes_stereo_to_mono() -> None:
    stereo = np.array([[1000, 3000]] * 160, dtype="<i2").tobytes()
    out = AudioConverter(AudioFormat("pcm_s16le", 8000, 2), PCM_8K).process(stereo)
    assert np.all(np.frombuffer(out, "<i2") == 2000)
    back = AudioConverter(PCM_8K, AudioFormat("pcm_s16le", 8000, 2)).process(out)
    assert np.frombuffer(back, "<i2").reshape(-1, 2).tolist()[0] == [2000, 2000]
