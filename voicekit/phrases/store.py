"""Cached phrases on disk: one file per phrase, its audio and alignment together.

A file is a magic line, a 4-byte header length, a JSON header (the key's parts, and each
chunk's byte count and alignment) and the audio bytes. Reading checks the structure: a
truncated or foreign file, a header that is not what this module writes, or an alignment
that does not spell the key's text is reported and treated as a miss, never played.
(The audio itself is not authenticated: whoever can write the directory decides what
callers hear, so it must be the server's alone.) Only regular files are read, without
blocking on FIFOs. Files are written whole to a side name and renamed into place, so a
reader never sees half a phrase and two processes filling the same phrase cannot corrupt
it.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import struct
from pathlib import Path
from typing import Any

from voicekit.files import write_whole
from voicekit.phrases.key import PhraseKey
from voicekit.tts import Alignment, AudioChunk

__all__ = ["MAX_PHRASE_BYTES", "PhraseStore"]

logger = logging.getLogger(__name__)

MAGIC = b"voicekit-phrase 1\n"
SUFFIX = ".phrase"
MAX_PHRASE_BYTES = 32 * 1024 * 1024  # about 30 minutes of 8 kHz audio: no phrase is longer
_HEADER_LEN = struct.Struct(">I")


def _alignment_json(alignment: Alignment | None) -> dict[str, Any] | None:
    if alignment is None:
        return None
    return {
        "chars": list(alignment.chars),
        "start_ms": list(alignment.start_ms),
        "duration_ms": list(alignment.duration_ms),
    }


def _alignment(data: Any) -> Alignment:
    if not isinstance(data, dict):
        raise ValueError("a chunk without alignment")
    chars, starts, durations = data["chars"], data["start_ms"], data["duration_ms"]
    if not all(isinstance(x, list) for x in (chars, starts, durations)):
        raise ValueError("malformed alignment")
    if not (
        len(chars) == len(starts) == len(durations)
        and all(isinstance(c, str) and len(c) == 1 for c in chars)
        and all(isinstance(n, int) and n >= 0 for n in (*starts, *durations))
    ):
        raise ValueError("malformed alignment")
    return Alignment(tuple(chars), tuple(starts), tuple(durations))


def encode(key: PhraseKey, chunks: tuple[AudioChunk, ...]) -> bytes:
    header = {
        "key": key.describe(),
        "chunks": [
            {"bytes": len(c.data), "alignment": _alignment_json(c.alignment)} for c in chunks
        ],
    }
    blob = json.dumps(header, separators=(",", ":")).encode()
    return b"".join([MAGIC, _HEADER_LEN.pack(len(blob)), blob, *(c.data for c in chunks)])


def decode(key: PhraseKey, raw: bytes) -> tuple[AudioChunk, ...]:
    """The chunks stored in ``raw`` for ``key``; ValueError when it is not exactly that."""
    if not raw.startswith(MAGIC):
        raise ValueError("not a voicekit phrase file")
    at = len(MAGIC)
    (size,) = _HEADER_LEN.unpack_from(raw, at)
    at += _HEADER_LEN.size
    header = json.loads(raw[at : at + size])
    at += size
    if not isinstance(header, dict) or not isinstance(header.get("chunks"), list):
        raise ValueError("malformed header")
    if header.get("key") != key.describe():
        raise ValueError("the file holds another phrase")
    chunks = []
    for entry in header["chunks"]:
        if not isinstance(entry, dict):
            raise ValueError("malformed chunk entry")
        n = entry["bytes"]
        if not isinstance(n, int) or n < 0 or at + n > len(raw):
            raise ValueError("truncated audio")
        data = raw[at : at + n]
        key.fmt.check(data)
        chunks.append(AudioChunk(data, _alignment(entry.get("alignment"))))
        at += n
    if at != len(raw):
        raise ValueError("trailing bytes after the audio")
    if not chunks:
        raise ValueError("no audio")
    spelled = "".join(ch for c in chunks if c.alignment for ch in c.alignment.chars)
    if "".join(spelled.split()) != "".join(key.text.split()):
        raise ValueError("the alignment does not spell the phrase")
    return tuple(chunks)


class PhraseStore:
    """A directory of phrase files. Blocking: call it from a worker thread."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, key: PhraseKey) -> Path:
        return self.directory / f"{key.digest}{SUFFIX}"

    def load(self, key: PhraseKey) -> tuple[AudioChunk, ...] | None:
        path = self.path(key)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("phrase cache: cannot read %s: %s", path.name, exc)
            return None
        try:
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise ValueError("not a regular file")
                raw = f.read(MAX_PHRASE_BYTES + 1)
            if len(raw) > MAX_PHRASE_BYTES:
                raise ValueError(f"larger than {MAX_PHRASE_BYTES} bytes")
            return decode(key, raw)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            logger.warning("phrase cache: ignoring %s: %s", path.name, exc)
            return None
        except (OSError, struct.error) as exc:
            logger.warning("phrase cache: cannot read %s: %s", path.name, exc)
            return None

    def save(self, key: PhraseKey, chunks: tuple[AudioChunk, ...]) -> str | None:
        """Write the phrase; None when written, else why not."""
        raw = encode(key, chunks)
        if len(raw) > MAX_PHRASE_BYTES:
            return f"larger than {MAX_PHRASE_BYTES} bytes"
        path = self.path(key)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_whole(path, raw)
        except OSError as exc:
            logger.warning("phrase cache: cannot write %s: %s", path.name, exc)
            return f"cannot write to {self.directory}: {exc.strerror or exc}"
        return None
