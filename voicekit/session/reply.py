"""One agent reply: LLM (or fixed text) → segmenter → the call's TTS session → playout.

Each audio chunk is converted (only if the formats differ), cut into frames and queued
the moment it arrives; no sentence of audio is ever held back. Marks go after the frame
where each word ends and after each chunk, so the far end confirms word by word what
the caller has heard.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from voicekit.audio import AudioConverter, AudioFormat, Framer
from voicekit.llm import LLM, Message, TextDelta
from voicekit.metrics import stamp
from voicekit.records import TurnMetrics
from voicekit.retry import RetryPolicy
from voicekit.session.playout import Playout
from voicekit.session.spoken import SpokenText
from voicekit.tasks import spawn
from voicekit.text import SentenceSegmenter
from voicekit.tts import TTSSession, Utterance

__all__ = ["Reply", "ReplyKind", "ReplyPipeline"]

logger = logging.getLogger(__name__)

ReplyKind = Literal["answer", "greeting", "prompt", "farewell", "apology", "voicemail"]
FRAME_MS = 20.0


@dataclass(eq=False)
class Reply:
    """State of one reply, shared by the pipeline and the session."""

    id: int
    kind: ReplyKind
    metrics: TurnMetrics
    fixed_text: str | None = None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    spoken: SpokenText = field(default_factory=SpokenText)
    pieces: list[str] = field(default_factory=list)
    heard_ms: float = 0.0
    started_playing: bool = False
    audio_done: bool = False
    played: anyio.Event = field(default_factory=anyio.Event)  # final mark reached
    done: anyio.Event = field(default_factory=anyio.Event)  # recorded by the session
    interrupted: bool = False
    finished: bool = False
    error: BaseException | None = None

    @property
    def text(self) -> str:
        return " ".join(self.pieces)

    def heard_text(self) -> str:
        return self.spoken.heard(self.heard_ms)


def _first_error(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class ReplyPipeline:
    """Runs replies for one call on its persistent TTS session."""

    def __init__(
        self,
        *,
        llm: LLM,
        tts_session: TTSSession,
        tts_format: AudioFormat,
        playout: Playout,
        messages: Callable[[], Sequence[Message]],
        max_tokens: int | None,
        temperature: float | None,
        first_clause_min_chars: int,
        max_segment_chars: int,
        call_id: str,
        llm_policy: RetryPolicy | None = None,
    ) -> None:
        self.llm = llm
        self.tts_session = tts_session
        self.tts_format = tts_format
        self.playout = playout
        self._messages = messages
        self._marks: dict[str, tuple[Reply, float, bool]] = {}
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.first_clause_min_chars = first_clause_min_chars
        self.max_segment_chars = max_segment_chars
        self.call_id = call_id
        self.llm_policy = llm_policy or llm.retry_policy
        self._mark_seq = 0

    async def run(self, reply: Reply) -> None:
        """Speak ``reply`` to the end, or until its scope is cancelled (barge-in)."""
        utterance = self.tts_session.utterance()
        with reply.scope:
            try:
                async with anyio.create_task_group() as tg:
                    spawn(tg, self._pump_audio, reply, utterance)
                    await self._feed_text(reply, utterance)
                await self._wait_played(reply)
            except Exception as exc:
                reply.error = _first_error(exc)
                logger.warning(
                    "call=%s reply %d (%s) failed: %s",
                    self.call_id,
                    reply.id,
                    reply.kind,
                    reply.error,
                )
        if not reply.audio_done:
            with anyio.CancelScope(shield=True):
                await utterance.cancel()

    # -- text in ---------------------------------------------------------------------------

    def _segmenter(self) -> SentenceSegmenter:
        return SentenceSegmenter(
            first_clause_min_chars=self.first_clause_min_chars, max_chars=self.max_segment_chars
        )

    async def _feed_text(self, reply: Reply, utterance: Utterance) -> None:
        if reply.fixed_text is not None:
            segmenter = self._segmenter()
            for piece in segmenter.push(reply.fixed_text) + segmenter.flush():
                await self._push_piece(reply, utterance, piece)
        else:
            stamp(reply.metrics, "llm_request")

            # Retry only what can safely be repeated: a retryable provider error before any
            # piece of this reply went to the TTS (so no audio of it can have played).
            # The callbacks hold plain values and the pieces list, not the pipeline: tenacity
            # keeps them in a reference cycle, which must not keep the call alive.
            call_id, reply_id, pieces = self.call_id, reply.id, reply.pieces

            def before_retry(attempt: int, error: BaseException) -> None:
                logger.warning(
                    "call=%s reply %d: LLM attempt %d failed (%s); retrying",
                    call_id,
                    reply_id,
                    attempt,
                    error,
                )

            retrying = self.llm_policy.retrying(lambda _: not pieces, before_retry=before_retry)
            try:
                async for attempt in retrying:
                    with attempt:
                        await self._stream_llm(reply, utterance)
            except Exception as exc:
                if not reply.pieces:
                    raise
                # Part of the reply is already with the TTS: let it finish playing rather
                # than cut the caller off mid-sentence; the session apologises after.
                reply.error = exc
                logger.warning(
                    "call=%s reply %d: LLM failed after %d pieces: %s",
                    self.call_id,
                    reply.id,
                    len(reply.pieces),
                    exc,
                )
        await utterance.flush()
        await utterance.end()

    async def _stream_llm(self, reply: Reply, utterance: Utterance) -> None:
        segmenter = self._segmenter()
        events: AsyncIterator[Any] = self.llm.stream(
            self._messages(), max_tokens=self.max_tokens, temperature=self.temperature
        )
        async with contextlib.aclosing(events) as stream:  # type: ignore[type-var]
            async for event in stream:
                if isinstance(event, TextDelta) and event.text:
                    stamp(reply.metrics, "llm_first_token")
                    for piece in segmenter.push(event.text):
                        await self._push_piece(reply, utterance, piece)
        for piece in segmenter.flush():
            await self._push_piece(reply, utterance, piece)

    async def _push_piece(self, reply: Reply, utterance: Utterance, piece: str) -> None:
        stamp(reply.metrics, "first_segment")
        reply.pieces.append(piece)
        reply.spoken.add_text(piece + " ")
        await utterance.push_text(piece + " ")
        await utterance.flush()

    # -- audio out ------------------------------------------------------------------------

    def _mark(self, reply: Reply, position_ms: float, final: bool = False) -> None:
        self._mark_seq += 1
        name = f"r{reply.id}.{self._mark_seq}"
        self._marks[name] = (reply, position_ms, final)
        self.playout.enqueue_mark(reply.id, name)

    async def _pump_audio(self, reply: Reply, utterance: Utterance) -> None:
        out_fmt = self.playout.format
        converter = AudioConverter(self.tts_format, out_fmt)
        framer = Framer(out_fmt, FRAME_MS)
        frame_ms = out_fmt.duration_ms(framer.frame_bytes)
        position = 0.0
        marked = 0.0
        word_ends: deque[float] = deque()

        def queue_frames(frames: list[bytes]) -> None:
            nonlocal position, marked
            for frame in frames:
                self.playout.enqueue_frame(reply.id, frame)
                position += frame_ms
                if word_ends and word_ends[0] <= position:
                    while word_ends and word_ends[0] <= position:
                        word_ends.popleft()
                    self._mark(reply, position)
                    marked = position

        async for chunk in utterance:
            stamp(reply.metrics, "tts_first_audio")
            align = chunk.alignment
            ends = reply.spoken.add_audio(
                self.tts_format.duration_ms(len(chunk.data)),
                *((align.chars, align.start_ms, align.duration_ms) if align else ()),
            )
            word_ends.extend(ends)
            queue_frames(framer.push(converter.process(chunk.data)))
            if position > marked:
                self._mark(reply, position)
                marked = position
        queue_frames(framer.push(converter.flush()))
        tail = framer.flush(pad=True)
        if tail is not None:
            queue_frames([tail])
        reply.spoken.complete = True
        reply.audio_done = True
        self._mark(reply, position, final=True)

    def mark_reached(self, name: str) -> None:
        """The far end reports that the audio before mark ``name`` has played."""
        entry = self._marks.pop(name, None)
        if entry is None:
            return
        reply, position, final = entry
        if reply.interrupted or reply.finished:
            return  # echoed by clear, or late: it proves nothing about what was heard
        stamp(reply.metrics, "first_mark_reached")
        reply.heard_ms = max(reply.heard_ms, position)
        if final:
            reply.heard_ms = max(reply.heard_ms, reply.spoken.audio_ms)
            reply.played.set()

    async def _wait_played(self, reply: Reply) -> None:
        """Wait for the final mark; give up (and say so) if the far end never echoes it."""
        budget = reply.spoken.audio_ms / 1000 + self.playout.lead + 5.0
        with anyio.move_on_after(budget):
            await reply.played.wait()
            return
        logger.warning(
            "call=%s reply %d: final mark not acknowledged after %.1f s",
            self.call_id,
            reply.id,
            budget,
        )
        reply.heard_ms = max(reply.heard_ms, reply.spoken.audio_ms)
        reply.played.set()
