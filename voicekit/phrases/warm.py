"""Filling the phrase cache ahead of time (``voicekit flow warm``).

Each phrase is synthesised exactly as a reply speaks it (the same segmenter, a flush
after each piece), in its own utterance on one TTS session, so the stored alignment is
the one a live reply would have produced. A phrase already cached is skipped; a failed
one is reported and the rest go on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from voicekit.audio import AudioFormat
from voicekit.config.sections import TurnSettings
from voicekit.phrases.cache import PhraseCache, VoicePhrases
from voicekit.text import SentenceSegmenter
from voicekit.tts import TTS, AudioChunk, TTSSession

__all__ = ["WarmReport", "warm_phrases"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class WarmReport:
    synthesised: int = 0
    already: int = 0
    audio_ms: float = 0.0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (text, why)


async def _synthesise(
    session: TTSSession, text: str, segmenter: SentenceSegmenter
) -> tuple[AudioChunk, ...]:
    utterance = session.utterance()
    for piece in segmenter.push(text) + segmenter.flush():
        await utterance.push_text(piece + " ")
        await utterance.flush()
    await utterance.end()
    return tuple([chunk async for chunk in utterance])


def _segmenter(turn: TurnSettings) -> SentenceSegmenter:
    """The segmenter a reply uses under ``turn`` (so pieces, and flushes, match)."""
    return SentenceSegmenter(
        first_clause_min_chars=turn.first_clause_min_chars, max_chars=turn.max_segment_chars
    )


async def warm_phrases(
    tts: TTS,
    fmt: AudioFormat,
    texts: Sequence[str],
    cache: PhraseCache,
    turn: TurnSettings | None = None,
) -> WarmReport:
    """Synthesise every text of ``texts`` not yet in ``cache`` for ``tts`` in ``fmt``."""
    phrases = VoicePhrases.of(cache, tts, fmt)
    report = WarmReport()
    async with tts.session(fmt, call_id="warm") as session:
        for text in texts:
            if await phrases.get(text) is not None:
                report.already += 1
                continue
            try:
                chunks = await _synthesise(session, text, _segmenter(turn or TurnSettings()))
            except Exception as exc:
                logger.warning("phrase cache: cannot synthesise a phrase: %s", exc)
                report.failed.append((text, f"{type(exc).__name__}: {exc}"))
                continue
            problem = await phrases.save(text, chunks)
            if problem is not None:
                report.failed.append((text, problem))
                continue
            report.synthesised += 1
            report.audio_ms += sum(fmt.duration_ms(len(c.data)) for c in chunks)
    return report
