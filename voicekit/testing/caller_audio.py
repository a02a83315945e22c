"""Caller audio for tests: voiced stretches the fake STT hears as speech, and silence."""

from __future__ import annotations

import math

import numpy as np

from voicekit.audio import AudioConverter, AudioFormat

__all__ = ["silence", "voice"]


def voice(ms: float, fmt: AudioFormat, *, freq: float = 180.0, amplitude: float = 8000) -> bytes:
    """``ms`` of a voiced, speech-loud signal (a buzz with harmonics) in ``fmt``."""
    n = int(fmt.sample_rate * ms / 1000)
    t = np.arange(n) / fmt.sample_rate
    wave = np.zeros(n)
    for k in range(1, 6):
        wave += np.sin(2 * math.pi * freq * k * t) / k
    pcm = (amplitude * wave / 2.3).astype("<i2").tobytes()
    return AudioConverter(AudioFormat("pcm_s16le", fmt.sample_rate), fmt).process(pcm)


def silence(ms: float, fmt: AudioFormat) -> bytes:
    """``ms`` of digital silence in ``fmt``."""
    return fmt.silence(ms)
