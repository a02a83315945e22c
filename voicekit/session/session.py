"""The per-call orchestrator: turn-taking, barge-in, greetings, silence, hang-up.

One ``CallSession`` runs one call in one anyio task group: the media loop (caller audio to
the STT, marks back from the far end), the STT loop (transcripts and turn ends), paced
playout, a watchdog for silence and call length, and at most one reply at a time.

Barge-in is one atomic step: with no ``await`` in between, the reply is marked
interrupted, queued audio is dropped, the LLM and TTS are cancelled, and the assistant's
message is cut to the words the far end confirmed as played; only then is ``clear``
sent. Marks echoed by ``clear`` therefore cannot count as heard.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import anyio
from anyio.abc import TaskGroup

from voicekit.audio import AudioConverter
from voicekit.config.sections import AgentSettings, TurnSettings
from voicekit.errors import VoiceKitError
from voicekit.llm import LLM
from voicekit.metrics import stamp
from voicekit.phrases import PhraseCache, VoicePhrases
from voicekit.plugins import PluginManager
from voicekit.plugins.observers import Observers
from voicekit.records import CallRecord, TranscriptEntry, TurnMetrics
from voicekit.session.actions import CallActions, Keypad
from voicekit.session.caller import CallerTurns
from voicekit.session.closing import CallEnding, EndingHost
from voicekit.session.history import ConversationHistory
from voicekit.session.inbound_clock import InboundClock
from voicekit.session.interruptions import BargeIn
from voicekit.session.media_in import InboundMedia
from voicekit.session.negotiate import choose_format
from voicekit.session.playout import Playout
from voicekit.session.replies import Replies
from voicekit.session.reply import ReplyPipeline
from voicekit.session.responder import Responder, ResponderFactory
from voicekit.session.resume import CutReply
from voicekit.session.speculation import Speculator
from voicekit.session.speculation_start import SpeculationStart
from voicekit.session.tool_runner import ToolRunner
from voicekit.session.voicemail import VoicemailDetector
from voicekit.stt import STT, EndOfTurn, SpeechStarted, STTStream, Transcript, TurnLikelyOver
from voicekit.tasks import first_error, spawn
from voicekit.telephony import MediaStream
from voicekit.tools import FunctionTool, call_tools
from voicekit.tts import TTS

__all__ = ["CallSession"]

logger = logging.getLogger(__name__)

Hangup = Callable[[], Awaitable[None]]
Transfer = Callable[[str], Awaitable[None]]


class CallSession:
    """Runs one call: ``record = await CallSession(media, stt=..., llm=..., tts=...).run()``."""

    def __init__(
        self,
        media: MediaStream,
        *,
        stt: STT,
        llm: LLM | None,
        tts: TTS,
        agent: AgentSettings | None = None,
        turn: TurnSettings | None = None,
        hooks: Observers | PluginManager | None = None,
        hangup: Hangup | None = None,
        transfer: Transfer | None = None,
        tools: Sequence[FunctionTool] = (),
        responder: ResponderFactory | None = None,
        phrases: PhraseCache | None = None,
    ) -> None:
        self.media = media
        self.stt = stt
        if llm is None and responder is None:
            raise ValueError("a call with no LLM needs a responder (a flow) to answer the caller")
        self.llm = llm.for_call(media.call.call_id) if llm is not None else None
        self.tts = tts
        self.agent = agent or AgentSettings()
        self.turn = turn or TurnSettings()
        self.call = media.call
        self.call_id = media.call.call_id
        self.responder: Responder | None = responder(media.call) if responder else None
        self._hooks = hooks if hooks is None or isinstance(hooks, Observers) else Observers(hooks)
        self.actions = CallActions(self.call, self.agent.transfer_allowlist)
        self.tools = call_tools(
            tools,
            self.agent.builtin_tools,
            self.agent.transfer_allowlist,
            can_transfer=transfer is not None,
            call_id=self.call_id,
        )
        self._tool_runner: ToolRunner | None = None
        self._keypad = Keypad(self.agent.dtmf_gap_s, self._keys_done)
        self.history = ConversationHistory.for_agent(self.agent)
        self.record = CallRecord(call=self.call, started_at=time.time())
        self._voicemail = VoicemailDetector(self.turn.voicemail_phrases)
        self.stt_format = choose_format(media.inbound_format, stt.input_formats)
        self.tts_format = choose_format(media.outbound_format, tts.output_formats)
        self._inbound = AudioConverter(media.inbound_format, self.stt_format)
        self.phrases = None if phrases is None else VoicePhrases.of(phrases, tts, self.tts_format)
        # True where audio is converted; a call whose providers speak its codec has none.
        self.transcoding = {
            "inbound": not self._inbound.passthrough,
            "outbound": self.tts_format != media.outbound_format,
        }
        self.playout = Playout(
            media,
            media.outbound_format,
            lead_ms=self.turn.playout_lead_ms,
            message_ms=self.turn.playout_message_ms,
            on_frame_sent=lambda *sent: self.replies.frame_sent(*sent),
            call_id=self.call_id,
        )
        self._tg: TaskGroup | None = None
        self._pipeline: ReplyPipeline | None = None
        self.ending = CallEnding(
            EndingHost(
                say=lambda kind, text: self.replies.start(kind, text),
                interrupt=lambda: self.replies.interrupt(),
                busy=lambda: self.replies.current is not None or self._caller.speaking,
            ),
            agent=self.agent,
            turn=self.turn,
            actions=self.actions,
            call_id=self.call_id,
            hangup=hangup,
            transfer=transfer,
        )
        self._speculator = Speculator(self.turn.max_speculations, self.call_id)
        self.replies = Replies(
            call_id=self.call_id,
            playout=self.playout,
            history=self.history,
            record=self.record,
            ending=self.ending,
            speculator=self._speculator,
            responder=lambda: self.responder,
            on_recorded=lambda turn: self._notify("turn_completed", call=self.call, turn=turn),
        )
        self._caller = CallerTurns()
        self._clock = InboundClock()
        self._media_in = InboundMedia(
            media,
            converter=self._inbound,
            clock=self._clock,
            keypad=self._keypad,
            ending=self.ending,
            pipeline=lambda: self._pipeline,
            task_group=lambda: self._tg,
            call_id=self.call_id,
        )
        self._barge_in = BargeIn(
            replies=self.replies,
            caller=self._caller,
            actions=self.actions,
            transcript=self.record.transcript,
            turn=self.turn,
            call_id=self.call_id,
        )
        self._guesses = SpeculationStart(
            turn=self.turn,
            has_llm=self.llm is not None,
            speculator=self._speculator,
            caller=self._caller,
            replies=self.replies,
            ending=self.ending,
            history=self.history,
            voicemail=self._voicemail,
            responder=lambda: self.responder,
            after_barge_in=self._barge_in.pending,
        )

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> CallRecord:
        """Run the call to its end; always returns the call record."""
        self.ending.begin(anyio.current_time())
        self._notify("call_started", call=self.call)
        logger.info(
            "call=%s started: stt %s, tts %s, transcoding %s",
            self.call_id,
            self.stt_format,
            self.tts_format,
            self.transcoding,
        )
        try:
            async with AsyncExitStack() as stack:
                stt_stream = await stack.enter_async_context(
                    self.stt.stream(self.stt_format, call_id=self.call_id)
                )
                tts_session = await stack.enter_async_context(
                    self.tts.session(self.tts_format, call_id=self.call_id)
                )
                if self.tools:
                    self._tool_runner = ToolRunner(
                        self.tools,
                        self.actions,
                        timeout_s=self.agent.tool_timeout_s,
                        call_id=self.call_id,
                    )
                    stack.push_async_callback(self._tool_runner.aclose)
                self._pipeline = ReplyPipeline(
                    llm=self.llm,
                    tts_session=tts_session,
                    tts_format=self.tts_format,
                    playout=self.playout,
                    messages=self.history.messages,
                    max_tokens=self.agent.max_tokens,
                    temperature=self.agent.temperature,
                    first_clause_min_chars=self.turn.first_clause_min_chars,
                    max_segment_chars=self.turn.max_segment_chars,
                    call_id=self.call_id,
                    tools=self._tool_runner,
                    settle=functools.partial(self.history.settled, self.agent.tool_timeout_s),
                    filler=self.agent.filler,
                    filler_after_s=self.agent.filler_after_s,
                    phrases=self.phrases,
                )
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    self._guesses.attach(tg)
                    self.replies.attach(tg, self._pipeline)
                    self.ending.attach(tg)
                    spawn(tg, self._pipeline.prewarm)
                    spawn(tg, self._media_in.run, stt_stream)
                    spawn(tg, self._stt_loop, stt_stream)
                    spawn(tg, self.playout.run)
                    spawn(tg, self.ending.watchdog)
                    opening = self.responder.opening() if self.responder else None
                    if self.ending.machine_pending:
                        self.ending.machine_answered()
                    elif opening is not None:
                        self.replies.start("greeting", turn=opening)
                    elif self.responder is not None:
                        pass  # the responder lets the caller speak first
                    elif self.agent.first_speaker == "agent" and self.agent.greeting:
                        self.replies.start("greeting", self.agent.greeting)
                    await self.ending.ended.wait()
                    tg.cancel_scope.cancel()
        except Exception as exc:  # a provider that cannot open ends this call, not the server
            cause = first_error(exc)
            logger.error(
                "call=%s failed: %s: %s",
                self.call_id,
                type(cause).__name__,
                cause,
                exc_info=None if isinstance(cause, VoiceKitError) else cause,  # a bug: where
            )
            self.ending.end("error")
        finally:
            self._tg = None  # its tasks are over: nothing more may be started
            self._guesses.attach(None)
            self.ending.attach(None)
            self.replies.attach(None)
            self.replies.complete_all()
            self.playout.detach()
            self._keypad.detach()
            self._media_in.detach()
            self.record.total_usage()
            self._speculator.settle(self.record)
            if self.responder is not None:
                self.record.flow = dict(self.responder.state())
                with anyio.CancelScope(shield=True):
                    try:
                        await self.responder.aclose()
                    except Exception as exc:
                        logger.warning("call=%s: responder close failed: %s", self.call_id, exc)
            self.record.ended_at = time.time()
            self.record.end_reason = self.end_reason
            self.ending.detach()
            self.replies.detach()
            self._guesses.detach()
            logger.info(
                "call=%s ended: %s after %d turns",
                self.call_id,
                self.end_reason,
                len(self.record.turns),
            )
            self._notify("call_ended", call=self.call, record=self.record)
        return self.record

    # -- control from outside (webhooks, the server) -------------------------------------------

    @property
    def end_reason(self) -> str:
        """Why the call ended ("unknown" while it runs)."""
        return self.ending.end_reason

    def caller_hung_up(self, reason: str = "caller_hangup") -> None:
        """The telephony provider says the call is over: stop now, no farewell."""
        self.ending.caller_hung_up(reason)

    def machine_answered(self) -> None:
        """A machine answered (provider AMD): apply ``[turn] voicemail_action``. Called
        before :meth:`run`, it takes effect as soon as the session starts."""
        self.ending.machine_answered()

    def shut_down(self) -> None:
        """The server is shutting down and the grace period is over: say farewell, hang up."""
        self.ending.shut_down()

    def _notify(self, hook: str, **kwargs: Any) -> None:
        if self._hooks is not None:
            self._hooks.notify(hook, self.call_id, **kwargs)  # isolates each plugin

    # -- the caller's words ------------------------------------------------------------------

    async def _stt_loop(self, stt_stream: STTStream) -> None:
        try:
            async for event in stt_stream:
                now = anyio.current_time()
                self._guesses.heard()
                if isinstance(event, SpeechStarted | Transcript):
                    self._caller.hear(event)
                    self.ending.last_activity = now
                    if isinstance(event, Transcript):
                        self._guesses.heard_more(event)
                        await self._barge_in.check()
                elif isinstance(event, TurnLikelyOver):
                    self._guesses.speculate()
                elif isinstance(event, EndOfTurn):
                    self.ending.last_activity = now
                    await self._on_end_of_turn(event)
        except Exception as exc:
            logger.error("call=%s: STT failed: %s: %s", self.call_id, type(exc).__name__, exc)
            if not self.ending.ended.is_set():
                await self.ending.finish("stt_error")

    async def _on_end_of_turn(self, event: EndOfTurn) -> None:
        text = self._caller.end_turn()
        cut = self._barge_in.take_cut()
        if not self._guesses.answers(text):
            self._speculator.discard("the turn ended with other words")
        if not await self._take_turn(text, cut, event):
            self._speculator.end_turn(None)  # no turn of the caller's to charge guesses to

    async def _take_turn(self, text: str, cut: CutReply | None, event: EndOfTurn) -> bool:
        """Act on the caller's ended turn; whether it became a turn of theirs (with
        metrics), rather than a resume, a backchannel, noise or words during closing."""
        if self.ending.closing:
            return False
        if self._barge_in.listener_words(text, cut):
            return False
        now = anyio.current_time()
        return await self._caller_turn(text, self._clock.arrival(event.end_ms) or now, now)

    def _keys_done(self, digits: str) -> None:
        if self._tg is not None and not self.ending.closing:
            now = anyio.current_time()
            turn = functools.partial(self._caller_turn, keys=True)
            spawn(self._tg, turn, f"[caller pressed {digits}]", now, now)

    async def _caller_turn(
        self, text: str, speech_end: float, now: float, *, keys: bool = False
    ) -> bool:
        """A turn of the caller (words, or ``keys``): replaces any reply, starts the
        answer (or lets the speculation written for exactly these words be heard). A
        key turn drops a guess but leaves its cost with the spoken turn it was for.
        Whether the turn is answered (its metrics hold its guesses' cost)."""
        self.replies.turn_seq += 1
        self.ending.idle_prompts_used = 0
        if keys or self.replies.current is not None or not self._guesses.answers(text):
            self._speculator.discard("the turn is not the one it answered")
        self.record.transcript.append(TranscriptEntry("user", text, time.time()))
        if self._caller.turns == 1 and self.turn.voicemail_action != "ignore":
            phrase = self._voicemail.matches(text)
            if phrase is not None:
                self.history.add_user(text)
                await self.ending.voicemail_heard(phrase)
                return False
        current = self.replies.current
        if current is not None and current.closes_call:
            # The agent is saying goodbye or handing the call over: that reply plays to
            # its end and its hang-up or transfer happens; the words are kept, unanswered.
            logger.info("call=%s: caller turn during a closing reply: not answered", self.call_id)
            return False
        speculation = self._speculator.reply
        if speculation is None:
            # Cut the reply in progress first: the turn's metrics (and what its guesses
            # cost) are made only once nothing can stop them being recorded.
            await self.replies.interrupt()
        metrics = speculation.metrics if speculation is not None else TurnMetrics(0)
        metrics.turn_index, metrics.user_text = self.replies.turn_seq, text
        stamp(metrics, "user_speech_end", speech_end)
        stamp(metrics, "stt_end_of_turn", now)
        if not keys:
            self._speculator.end_turn(metrics, promoted=speculation is not None)
        if speculation is not None:
            successor = self.replies.promote(speculation, text)
            if successor is not None:
                self.responder = successor
            return True
        self.history.add_user(text)
        turn = self.responder.reply_to(text) if self.responder is not None else None
        self.replies.start("answer", metrics=metrics, turn=turn)
        return True
