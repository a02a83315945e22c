"""One agent reply: LLM (or fixed text) → segmenter → the call's TTS session → playout.

Each audio chunk is converted (only if the formats differ), cut into frames and queued
the moment it arrives; no sentence of audio is ever held back. Marks go after the frame
where each word ends and after each chunk, so the far end confirms word by word what
the caller has heard.

A speculative reply (written before the caller's turn is known to be over) runs the same
way, except that its frames and marks wait in the reply instead of the playout queue,
and its tool calls wait too: :meth:`ReplyPipeline.release` sends what it holds when the
session confirms it; a discarded one is cancelled and what it held is dropped.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from voicekit.audio import AudioConverter, AudioFormat, Framer
from voicekit.llm import LLM, Message, TextDelta, Tool, ToolCall, Usage
from voicekit.metrics import stamp
from voicekit.phrases import VoicePhrases
from voicekit.retry import RetryPolicy
from voicekit.session.history import ToolStep
from voicekit.session.playout import Playout
from voicekit.session.reply_audio import ReplyAudio
from voicekit.session.reply_state import PlaybackState, Reply, ReplyKind, RequestMeter
from voicekit.session.tool_runner import ToolRunner
from voicekit.tasks import first_error, spawn
from voicekit.text import SentenceSegmenter
from voicekit.tts import TTSSession, Utterance

__all__ = ["LLMRequest", "PlaybackState", "Reply", "ReplyKind", "ReplyPipeline"]

logger = logging.getLogger(__name__)

FRAME_MS = 20.0
MAX_TOOL_ROUNDS = 5  # rounds of tool calls one reply may run before the model must answer
MAX_TOOL_CALLS_PER_REPLY = 10  # tool calls one reply may run, over all its rounds


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """What a responder adds to one answer's LLM requests: system text, tools, a hook
    that claims the calls of its own tools (``on_call`` returns True), and ``hold``:
    awaited before the answer speaks its first piece or runs its first tool, so an
    answer can be written while something else decides whether it is wanted."""

    instructions: str = ""
    tools: Sequence[Tool] = ()
    on_call: Callable[[ToolCall], bool] | None = None
    hold: Callable[[], Awaitable[None]] | None = None


def _results_by_call(steps: list[ToolStep]) -> dict[tuple[str, str], str]:
    """The successful results of calls already made in a reply, by (name, arguments)."""
    return {
        (call.name, call.arguments): result
        for step in steps
        for call in step.calls
        if (result := step.results.get(call.id)) is not None and not result.startswith("Error")
    }


class ReplyPipeline:
    """Runs replies for one call on its persistent TTS session."""

    def __init__(
        self,
        *,
        llm: LLM | None,
        tts_session: TTSSession,
        tts_format: AudioFormat,
        playout: Playout,
        messages: Callable[[str | None], Sequence[Message]],
        max_tokens: int | None,
        temperature: float | None,
        first_clause_min_chars: int,
        max_segment_chars: int,
        call_id: str,
        llm_policy: RetryPolicy | None = None,
        tools: ToolRunner | None = None,
        settle: Callable[[], Awaitable[None]] | None = None,
        filler: str = "",
        filler_after_s: float = 1.5,
        phrases: VoicePhrases | None = None,
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
        self.llm_policy = llm_policy or (llm.retry_policy if llm is not None else RetryPolicy())
        self.tools = tools
        self._settle = settle
        self.filler = filler.strip()
        self.filler_after_s = filler_after_s
        self._mark_seq = 0
        self.phrases = phrases

    async def run(self, reply: Reply) -> None:
        """Speak ``reply`` to the end, or until its scope is cancelled (barge-in)."""
        audio = ReplyAudio(self.tts_session, self.phrases)
        with reply.scope:
            try:
                async with anyio.create_task_group() as tg:
                    spawn(tg, self._pump_audio, reply, audio)
                    await self._feed_text(reply, audio)
                await reply.confirmed.wait()  # a speculation: until the caller's turn is known
                await self._wait_played(reply)
            except Exception as exc:
                reply.fail(first_error(exc))
                logger.warning(
                    "call=%s reply %d (%s) failed: %s",
                    self.call_id,
                    reply.id,
                    reply.kind,
                    reply.error,
                )
        if not reply.audio_done:
            with anyio.CancelScope(shield=True):
                await audio.cancel()

    async def prewarm(self) -> None:
        """Open the LLM's connection while the caller is still speaking."""
        if self.llm is None:
            return
        try:
            await self.llm.prewarm()
        except Exception as exc:  # a cold first turn, not a failed call
            logger.info("call=%s: LLM prewarm failed: %s", self.call_id, exc)

    # -- text in ---------------------------------------------------------------------------

    def _segmenter(self) -> SentenceSegmenter:
        return SentenceSegmenter(
            first_clause_min_chars=self.first_clause_min_chars, max_chars=self.max_segment_chars
        )

    async def _feed_text(self, reply: Reply, audio: ReplyAudio) -> None:
        if reply.fixed_text is not None:  # configured text (cached), or a resumed answer
            await self.say(reply, audio, reply.fixed_text, cache=reply.kind != "resume")
        else:
            try:
                if reply.turn is not None:
                    from voicekit.session.speech import ReplySpeech

                    await reply.turn(ReplySpeech(self, reply, audio))
                else:
                    await self.answer(reply, audio)
            except Exception as exc:
                if not reply.pieces:
                    raise
                # Part of the reply is already with the TTS: let it finish playing rather
                # than cut the caller off mid-sentence; the session apologises after.
                reply.fail(exc)
                logger.warning(
                    "call=%s reply %d: failed after %d pieces: %s",
                    self.call_id,
                    reply.id,
                    len(reply.pieces),
                    exc,
                )
        reply.text_complete = reply.error is None
        await audio.end()

    async def say(self, reply: Reply, audio: ReplyAudio, text: str, *, cache: bool = False) -> None:
        """Speak ``text`` as written; with ``cache`` (text known before the call, never
        the caller's words) from the phrase cache, or live and then into the cache."""
        segmenter = self._segmenter()
        pieces = segmenter.push(text) + segmenter.flush()
        if not pieces:
            return
        if not cache or audio.phrases is None:
            for piece in pieces:
                await self._push_piece(reply, audio.live(), piece)
            return
        chunks = await audio.phrases.get(text)
        if chunks is not None:
            stamp(reply.metrics, "first_segment")
            for piece in pieces:
                reply.pieces.append(piece)
                reply.spoken.add_text(piece + " ")
            reply.metrics.cached_phrases += 1
            await audio.cached(chunks)
            return
        utterance = await audio.filling(text)
        for piece in pieces:
            await self._push_piece(reply, utterance, piece)
        await utterance.end()

    async def answer(
        self,
        reply: Reply,
        audio: ReplyAudio,
        extra: LLMRequest | None = None,
    ) -> None:
        """Speak the LLM's answer, running the tools it calls (rounds bounded)."""
        if self._settle is not None:
            await self._settle()  # a tool from an earlier turn may still be finishing
        stamp(reply.metrics, "llm_request")
        for round_ in range(MAX_TOOL_ROUNDS + 1):
            calls = await self._llm_round(reply, audio, extra)
            if not calls:
                break
            if extra is not None and extra.hold is not None:
                await extra.hold()
            if round_ == MAX_TOOL_ROUNDS:  # answered, not run: the reply ends
                logger.warning(
                    "call=%s reply %d: still calling tools after %d rounds; stopping",
                    self.call_id,
                    reply.id,
                    MAX_TOOL_ROUNDS,
                )
                self._refuse(reply, calls, f"not run: {MAX_TOOL_ROUNDS} rounds of tools")
                break
            await self._call_tools(reply, audio, calls)

    async def _llm_round(
        self, reply: Reply, audio: ReplyAudio, extra: LLMRequest | None
    ) -> list[ToolCall]:
        """One LLM request, retried while nothing of it has gone to the TTS (so no audio
        of it can have played); returns the tools it called."""
        # The callbacks hold plain values and the pieces list, not the pipeline: tenacity
        # keeps them in a reference cycle, which must not keep the call alive.
        call_id, reply_id, pieces = self.call_id, reply.id, reply.pieces
        before = len(pieces)

        def before_retry(attempt: int, error: BaseException) -> None:
            logger.warning(
                "call=%s reply %d: LLM attempt %d failed (%s); retrying",
                call_id,
                reply_id,
                attempt,
                error,
            )

        retrying = self.llm_policy.retrying(
            lambda _: len(pieces) == before, before_retry=before_retry
        )
        async for attempt in retrying:
            with attempt:
                return await self._stream_llm(reply, audio, extra)
        raise AssertionError("unreachable")  # pragma: no cover

    def request(self, reply: Reply, extra: LLMRequest | None) -> tuple[list[Message], list[Tool]]:
        """The messages and tools of the reply's next LLM request (a speculation's: the
        history as it will be once its caller's words are confirmed)."""
        unconfirmed = reply.user_text if reply.speculative else None
        messages = [*self._messages(unconfirmed), *reply.step_messages()]
        tools = list(self.tools.specs) if self.tools else []
        if extra is not None:
            if extra.instructions and messages and messages[0].role == "system":
                system = f"{messages[0].content}\n\n{extra.instructions}".strip()
                messages[0] = Message("system", system)
            tools += extra.tools
        return messages, tools

    async def _stream_llm(
        self, reply: Reply, audio: ReplyAudio, extra: LLMRequest | None
    ) -> list[ToolCall]:
        if self.llm is None:
            raise RuntimeError('this call has no LLM ([llm] provider = "none")')
        segmenter = self._segmenter()
        calls: list[ToolCall] = []
        messages, tools = self.request(reply, extra)
        on_call = extra.on_call if extra is not None else None
        hold = extra.hold if extra is not None else None
        meter = RequestMeter(reply, sum(len(m.content) for m in messages))
        events: AsyncIterator[Any] = self.llm.stream(
            messages,
            tools=tools or None,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
        )
        try:
            async with contextlib.aclosing(events) as stream:  # type: ignore[type-var]
                async for event in stream:
                    if isinstance(event, TextDelta):
                        if event.text:
                            stamp(reply.metrics, "llm_first_token")
                            meter.received += len(event.text)
                            for piece in segmenter.push(event.text):
                                if hold is not None:
                                    await hold()
                                await self._push_piece(reply, audio.live(), piece)
                    elif isinstance(event, ToolCall):
                        meter.received += len(event.name) + len(event.arguments)
                        if on_call is None or not on_call(event):
                            calls.append(event)
                    elif isinstance(event, Usage):
                        meter.reported = True
                        reply.add_usage(event)
        finally:
            meter.close()
        for piece in segmenter.flush():
            if hold is not None:
                await hold()
            await self._push_piece(reply, audio.live(), piece)
        return calls

    async def _call_tools(self, reply: Reply, audio: ReplyAudio, calls: list[ToolCall]) -> None:
        """Run the calls while what the model said before them plays; if they are slow,
        say the filler (once a turn); wait for every result."""
        step = ToolStep(tuple(calls), pieces_before=len(reply.pieces))
        done_before = _results_by_call(reply.tool_steps)
        reply.tool_steps.append(step)
        if self.tools is None:  # the model called a tool it was not offered
            for call in calls:
                step.set_result(call.id, f"Error: there is no tool named {call.name!r}")
            return
        to_run = []
        for call in calls:
            earlier = done_before.get((call.name, call.arguments))
            if earlier is not None:  # the same call again: its side effect happened once
                step.set_result(call.id, earlier)
            elif reply.tool_calls_run >= MAX_TOOL_CALLS_PER_REPLY:
                limit = MAX_TOOL_CALLS_PER_REPLY
                step.set_result(call.id, f"Error: not run: a reply may call {limit} tools")
            else:
                reply.tool_calls_run += 1
                to_run.append(call)
        await reply.confirmed.wait()  # no side effect on a guess: a speculation's wait here
        self.tools.start(step, reply.metrics.tools, to_run)
        if self.filler and not reply.filler_used:
            with anyio.move_on_after(self.filler_after_s):
                await step.done.wait()
            if not step.done.is_set():
                reply.filler_used = True
                await self.say(reply, audio, self.filler, cache=True)
        await step.done.wait()

    @staticmethod
    def _refuse(reply: Reply, calls: list[ToolCall], why: str) -> None:
        """Record calls that are not run, with an error result (the history must answer
        every call the model made)."""
        step = ToolStep(tuple(calls), pieces_before=len(reply.pieces))
        for call in calls:
            step.set_result(call.id, f"Error: {why}")
        reply.tool_steps.append(step)

    async def _push_piece(self, reply: Reply, utterance: Utterance, piece: str) -> None:
        stamp(reply.metrics, "first_segment")
        reply.pieces.append(piece)
        reply.spoken.add_text(piece + " ")
        await utterance.push_text(piece + " ")
        await utterance.flush()

    # -- audio out ------------------------------------------------------------------------

    def _mark(self, reply: Reply, position_ms: float, final: bool = False) -> None:
        if reply.discarded:
            return
        self._mark_seq += 1
        name = f"r{reply.id}.{self._mark_seq}"
        self._marks[name] = (reply, position_ms, final)
        if reply.held is not None:
            reply.held.append((None, name))
        else:
            self.playout.enqueue_mark(reply.id, name)

    def release(self, reply: Reply) -> None:
        """Send a confirmed speculation's held frames and marks to playout, in order, and
        let the rest of its audio go straight there (synchronous: no frame of another
        reply can come between)."""
        held, reply.held = reply.held, None
        for frame, mark in held or ():
            if frame is not None:
                self.playout.enqueue_frame(reply.id, frame)
            elif mark is not None:
                self.playout.enqueue_mark(reply.id, mark)

    def drop(self, reply: Reply) -> None:
        """Forget a discarded speculation's held audio and its marks."""
        reply.held = None
        for name in [n for n, entry in self._marks.items() if entry[0] is reply]:
            del self._marks[name]

    async def _pump_audio(self, reply: Reply, audio: ReplyAudio) -> None:
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
                if reply.held is not None:
                    reply.held.append((frame, None))
                elif not reply.discarded:
                    self.playout.enqueue_frame(reply.id, frame)
                position += frame_ms
                if word_ends and word_ends[0] <= position:
                    while word_ends and word_ends[0] <= position:
                        word_ends.popleft()
                    self._mark(reply, position)
                    marked = position

        async for chunk in audio.chunks():
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
            reply.advance("played")

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
        reply.advance("played")
