"""Read and write WAV files of 16-bit PCM, μ-law or A-law (call recordings are often
G.711), without a subprocess or a temp file."""

from __future__ import annotations

import struct
from pathlib import Path

from voicekit.audio.formats import AudioFormat, Encoding
from voicekit.errors import AudioFormatError

__all__ = ["first_channel", "read_wav", "write_wav"]

_TAGS: dict[int, tuple[Encoding, int]] = {1: ("pcm_s16le", 16), 6: ("alaw", 8), 7: ("mulaw", 8)}
_CODES = {"pcm_s16le": 1, "alaw": 6, "mulaw": 7}
_EXTENSIBLE = 0xFFFE


def read_wav(path: str | Path) -> tuple[AudioFormat, bytes]:
    """The format and raw sample bytes of a WAV file."""
    data = Path(path).read_bytes()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFormatError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    fmt: AudioFormat | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise AudioFormatError(f"{path}: truncated fmt chunk")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack_from("<H", body, 24)[0]
            if tag not in _TAGS or _TAGS[tag][1] != bits:
                raise AudioFormatError(
                    f"{path}: WAV format tag {tag} with {bits}-bit samples is not supported; "
                    "use 16-bit PCM, mu-law or A-law"
                )
            fmt = AudioFormat(_TAGS[tag][0], rate, channels)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioFormatError(f"{path}: data chunk before fmt chunk")
            whole = len(body) - len(body) % fmt.block_size
            return fmt, body[:whole]
        pos += 8 + size + (size & 1)
    raise AudioFormatError(f"{path}: no audio data chunk")


def write_wav(path: str | Path, fmt: AudioFormat, audio: bytes) -> None:
    """Write ``audio`` (raw bytes in ``fmt``) as a WAV file."""
    fmt.check(audio)
    bits = fmt.sample_width * 8
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(audio),
        b"WAVE",
        b"fmt ",
        16,
        _CODES[fmt.encoding],
        fmt.channels,
        fmt.sample_rate,
        fmt.bytes_per_second,
        fmt.block_size,
        bits,
        b"data",
        len(audio),
    )
    Path(path).write_bytes(header + audio + (b"\x00" if len(audio) & 1 else b""))


def first_channel(fmt: AudioFormat, audio: bytes) -> tuple[AudioFormat, bytes]:
    """The first (left) channel of ``audio``, and its mono format; mono audio as it is.
    A call recording (``voicekit simulate --record``) has the caller on the left."""
    if fmt.channels == 1:
        return fmt, audio
    width, frame = fmt.sample_width, fmt.block_size
    left = b"".join(audio[i : i + width] for i in range(0, len(audio) - frame + 1, frame))
    return AudioFormat(fmt.encoding, fmt.sample_rate), left
