"""Audio primitives: formats, G.711 codecs, streaming resampling, framing, conversion.

Everything here runs in process on numpy and libsoxr: never a subprocess, never a temp
file (DESIGN.md §6).
"""

from voicekit.audio.convert import AudioConverter
from voicekit.audio.formats import (
    ALAW_8K,
    PCM_8K,
    PCM_16K,
    PCM_24K,
    ULAW_8K,
    AudioFormat,
    Encoding,
)
from voicekit.audio.framing import Framer
from voicekit.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voicekit.audio.resample import Resampler
from voicekit.audio.wav import read_wav, write_wav

__all__ = [
    "ALAW_8K",
    "PCM_8K",
    "PCM_16K",
    "PCM_24K",
    "ULAW_8K",
    "AudioConverter",
    "AudioFormat",
    "Encoding",
    "Framer",
    "Resampler",
    "alaw_decode",
    "alaw_encode",
    "read_wav",
    "ulaw_decode",
    "ulaw_encode",
    "write_wav",
]
