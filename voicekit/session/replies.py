"""A call's replies: at most one playing, a speculative one held beside it, each recorded
once.

The session decides *when* a reply starts (a turn, a greeting, a prompt) and *whether* a
guess is promoted; this holds the replies themselves: it starts them in the call's task
group on its :class:`~voicekit.session.reply.ReplyPipeline`, cuts the playing one in one
step (barge-in), lets a promoted guess's held audio through, and records each finished
reply (its turn's metrics, the history, the transcript, the ``turn_completed`` hook)
exactly once, whatever ended it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio
from anyio.abc import TaskGroup

from voicekit.metrics import format_turn, frame_sent, stamp
from voicekit.records import CallRecord, TranscriptEntry, TurnMetrics
from voicekit.session.closing import CallEnding, caller_ended
from voicekit.session.history import ConversationHistory
from voicekit.session.playout import Playout
from voicekit.session.reply import Reply, ReplyKind, ReplyPipeline
from voicekit.session.responder import Responder, Turn
from voicekit.session.speculation import SpeculationCost, Speculator
from voicekit.tasks import detached, spawn

__all__ = ["Replies"]

logger = logging.getLogger(__name__)


class Replies:
    """The replies of one call; see the module docstring."""

    def __init__(
        self,
        *,
        call_id: str,
        playout: Playout,
        history: ConversationHistory,
        record: CallRecord,
        ending: CallEnding,
        speculator: Speculator,
        responder: Callable[[], Responder | None],
        on_recorded: Callable[[TurnMetrics], None],
    ) -> None:
        self.call_id = call_id
        self.playout = playout
        self.history = history
        self.record = record
        self.ending = ending
        self.speculator = speculator
        self._responder = responder
        self._on_recorded = on_recorded
        self.current: Reply | None = None  # the one reply that may play
        self.last: Reply | None = None  # the latest recorded (its words may echo)
        self.turn_seq = 0  # turns so far, the caller's and the agent's own
        self._live: dict[int, Reply] = {}  # started and not yet recorded
        self._seq = 0
        self._tg: TaskGroup | None = None
        self.pipeline: ReplyPipeline | None = None

    def attach(self, tg: TaskGroup | None, pipeline: ReplyPipeline | None = None) -> None:
        """The call's task group and pipeline; None once the call is over."""
        self._tg = tg
        if pipeline is not None:
            self.pipeline = pipeline
            self.speculator.drop = pipeline.drop

    def detach(self) -> None:
        """The call is over and recorded: drop the callbacks into the session, so no
        reference cycle keeps the call alive until a full garbage collection."""
        self._responder = detached
        self._on_recorded = _ignore
        self.speculator.drop = None
        self.pipeline = None

    def get(self, reply_id: int) -> Reply | None:
        """A reply started and not yet recorded (a frame's owner)."""
        return self._live.get(reply_id)

    def frame_sent(self, reply_id: int, late_s: float, frames: int) -> None:
        """Playout sent ``frames`` frames of reply ``reply_id``, ``late_s`` after they were
        due: the first makes the reply ``speaking`` (and stamps its first frame)."""
        reply = self.get(reply_id)
        if reply is None:
            return
        if reply.advance("speaking"):
            stamp(reply.metrics, "first_frame_sent")
        frame_sent(reply.metrics, late_s, self.playout.lead, frames)

    @property
    def speaking(self) -> bool:
        return self.current is not None and self.current.playing

    def start(
        self,
        kind: ReplyKind,
        text: str | None = None,
        metrics: TurnMetrics | None = None,
        turn: Turn | None = None,
    ) -> Reply:
        """Start a reply now; it becomes the current one."""
        assert self._tg is not None and self.pipeline is not None
        if metrics is None:
            self.turn_seq += 1
            metrics = TurnMetrics(turn_index=self.turn_seq)
        self._seq += 1
        reply = Reply(id=self._seq, kind=kind, metrics=metrics, fixed_text=text, turn=turn)
        self._live[reply.id] = reply
        self.current = reply
        spawn(self._tg, self._run, reply)
        return reply

    def guess(
        self, text: str, turn: Turn | None, successor: Responder | None, responder_state: object
    ) -> Reply:
        """Start a speculative reply to the caller's words ``text``, its audio held; it is
        not current (nothing of it plays) until :meth:`promote`."""
        assert self._tg is not None
        self.speculator.discard("a newer guess")
        metrics = TurnMetrics(0, user_text=text)
        stamp(metrics, "turn_likely_over")
        self._seq += 1
        reply = Reply(
            id=self._seq,
            kind="answer",
            metrics=metrics,
            turn=turn,
            state="speculative",
            user_text=text,
        )
        self.speculator.start(reply, successor, self.history.revision, responder_state)
        logger.info("call=%s: speculative reply %d to %r", self.call_id, reply.id, text)
        spawn(self._tg, self._run, reply, self.speculator.cost)
        return reply

    def promote(self, reply: Reply, text: str) -> Responder | None:
        """The turn ended with the words ``reply`` answered: it becomes the current reply
        and its held audio goes to playout, in one step. Returns the responder copy it
        ran on (the call's responder from now on), if any."""
        _, successor = self.speculator.take()
        self.history.add_user(text)
        reply.advance("confirmed")
        self._live[reply.id] = reply
        self.current = reply
        assert self.pipeline is not None
        self.pipeline.release(reply)
        logger.info("call=%s: speculative reply %d promoted", self.call_id, reply.id)
        return successor

    async def interrupt(self) -> Reply | None:
        """Barge-in as one step (see the session's docstring). A guess goes too."""
        self.speculator.discard("the reply in progress was cut")
        reply = self.current
        if reply is None:
            return None
        reply.advance("interrupted")
        self.current = None
        self.playout.drop_queued()
        reply.scope.cancel()
        self.complete(reply)
        if reply.started_playing:
            await self.playout.clear()
        return reply

    def complete_all(self) -> None:
        """The call is over: record every reply still running."""
        for reply in list(self._live.values()):
            self.complete(reply)

    async def _run(self, reply: Reply, cost: SpeculationCost | None = None) -> None:
        assert self.pipeline is not None
        try:
            await self.pipeline.run(reply)
            if reply.speculative:  # it failed before its turn was known: a fresh reply will do
                if self.speculator.reply is reply:
                    self.speculator.discard(f"it failed: {reply.error}")
                reply.advance("discarded")
        finally:
            if reply.discarded and cost is not None:
                cost.charge(reply)  # one left running when the call ends is charged there
        if not reply.discarded:
            self.complete(reply)

    def complete(self, reply: Reply) -> None:
        """Record a finished, failed or interrupted reply exactly once."""
        if reply.finished:
            return
        reply.finished = True
        self._live.pop(reply.id, None)
        if self.current is reply:
            self.current = None
        self.last = reply
        m = reply.metrics
        m.status = reply.outcome(caller_gone=caller_ended(self.ending.end_reason))
        # Only words the far end confirmed as played were heard: a reply cut short by a
        # barge-in, a failure or the end of the call keeps just those.
        heard = reply.text if m.status == "played" else reply.heard_text()
        m.agent_text, m.heard_text, m.interrupted = reply.text, heard, reply.interrupted
        if reply.error is not None:
            m.error = f"{type(reply.error).__name__}: {reply.error}"
        self.history.add_reply(reply.segments(), heard)
        if heard:
            self.record.transcript.append(
                TranscriptEntry("agent", heard, time.time(), interrupted=reply.interrupted)
            )
        responder = self._responder()
        if responder is not None:
            m.flow = dict(responder.turn_state())
        self.record.turns.append(m)
        self.ending.last_activity = anyio.current_time()
        logger.info(format_turn(self.call_id, m))
        self._on_recorded(m)
        self.ending.after_reply(reply)
        reply.done.set()


def _ignore(turn: TurnMetrics) -> None:
    """After the call: nothing is recorded any more."""
