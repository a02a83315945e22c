"""Speculative replies: the bookkeeping of answering before the caller's turn is over.

When the STT says a turn is probably over (``TurnLikelyOver``, or a final transcript and
then quiet), the session starts the reply at once, with its audio held. On ``EndOfTurn``
the reply is promoted if the turn's words are the ones it answered, and dropped unheard
otherwise; new words from the caller drop it at once. What counts as "the same words" is
:func:`same_turn`: case, punctuation and filler words ("um", "uh") do not matter.

This module holds what the session needs to decide and to account for it; the session
does the starting, holding and releasing (it alone owns replies and audio).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import anyio
from anyio.abc import TaskGroup

from voicekit.records import CallRecord, TurnMetrics
from voicekit.session.reply_state import Reply
from voicekit.session.responder import Responder, Turn
from voicekit.tasks import detached, spawn

__all__ = [
    "FILLER_WORDS",
    "QuietAfterFinal",
    "SpeculationCost",
    "SpeculativeResponder",
    "Speculator",
    "same_turn",
    "turn_words",
]

logger = logging.getLogger(__name__)

# Sounds with no meaning of their own. Not "mm", and never a hyphenated or doubled one:
# "uh-uh", "mm-mm" and "uh uh" mean no, "mm-hmm" yes.
FILLER_WORDS = frozenset({"uh", "um", "umm", "uhm", "er", "erm", "ah", "eh", "hmm"})
CHARS_PER_TOKEN = 4  # for a request cancelled before its provider reported usage
_NOT_WORD = re.compile(r"[^\w\s'-]+")


def turn_words(text: str) -> tuple[str, ...]:
    """The words that decide whether two transcripts are the same turn: lower case, no
    punctuation, no lone filler word."""
    words = [w.strip("-'") for w in _NOT_WORD.sub(" ", text.lower()).split()]
    words = [w for w in words if w]
    kept = []
    for i, word in enumerate(words):
        doubled = (i > 0 and words[i - 1] == word) or (i + 1 < len(words) and words[i + 1] == word)
        if word not in FILLER_WORDS or doubled:
            kept.append(word)
    return tuple(kept)


def same_turn(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` say the same words, ignoring case, punctuation, fillers."""
    return turn_words(a) == turn_words(b)


@runtime_checkable
class SpeculativeResponder(Protocol):
    """A responder that can answer a turn before it is confirmed.

    A responder without this method is never speculated on: its replies start on
    ``EndOfTurn`` as before."""

    def speculate(self, text: str) -> tuple[Turn, Responder] | None:
        """The reply to ``text``, run on a copy of this responder, and that copy: it
        becomes the call's responder if the caller's turn turns out to be ``text``, and
        is dropped otherwise, so a guess never changes the real state. None: not worth
        a speculation (for example a keyword that leads to a cached script)."""
        ...


@dataclass(slots=True)
class SpeculationCost:
    """What the speculations of one caller turn cost; attached to the turn's metrics
    once the turn is known (dropped speculations keep adding to it as they wind down)."""

    started: int = 0
    discarded_input_tokens: int = 0
    discarded_output_tokens: int = 0
    turn: TurnMetrics | None = None

    def charge(self, reply: Reply) -> None:
        """Add the LLM tokens of a dropped speculation: those its providers reported, and
        for each request cut off before it reported, an estimate from the characters it
        sent and received."""
        m = reply.metrics
        spent_in = (m.input_tokens or 0) + -(-reply.unreported_chars_in // CHARS_PER_TOKEN)
        spent_out = (m.output_tokens or 0) + -(-reply.unreported_chars_out // CHARS_PER_TOKEN)
        self.discarded_input_tokens += spent_in
        self.discarded_output_tokens += spent_out
        if self.turn is not None:
            self.turn.discarded_input_tokens += spent_in
            self.turn.discarded_output_tokens += spent_out

    def attach(self, turn: TurnMetrics, *, promoted: bool) -> None:
        self.turn = turn
        turn.speculations = self.started
        turn.discarded_input_tokens += self.discarded_input_tokens
        turn.discarded_output_tokens += self.discarded_output_tokens
        if self.started:
            turn.speculation = "promoted" if promoted else "discarded"


@dataclass
class Speculator:
    """One call's speculation state: at most one at a time, ``limit`` per caller turn.

    ``drop`` forgets a dropped speculation's held audio (the reply pipeline's)."""

    limit: int
    call_id: str = "-"
    drop: Callable[[Reply], None] | None = None
    reply: Reply | None = None
    successor: Responder | None = None  # the responder copy the speculation runs on
    history_revision: int = -1  # the history it was written against
    responder_state: object = None  # and the responder's state (a flow's node, values)
    cost: SpeculationCost = field(default_factory=SpeculationCost)
    reply_cost: SpeculationCost | None = None  # the turn the running guess was started in
    unattached: list[SpeculationCost] = field(default_factory=list)  # turns never taken

    @property
    def has_budget(self) -> bool:
        """Whether the current turn may start another guess."""
        return self.cost.started < self.limit

    def guessing_on(self, text: str) -> bool:
        """Whether the running speculation answers these words already."""
        return self.reply is not None and same_turn(self.reply.user_text or "", text)

    def start(
        self,
        reply: Reply,
        successor: Responder | None,
        history_revision: int,
        responder_state: object = None,
    ) -> None:
        self.reply, self.successor = reply, successor
        self.history_revision, self.responder_state = history_revision, responder_state
        self.cost.started += 1
        self.reply_cost = self.cost

    def matches(
        self, text: str, history_revision: int, responder_state: Callable[[], object]
    ) -> bool:
        """Whether the running speculation answers the turn ``text`` as it will be asked:
        the same words, and the history and the responder's state (read only when a
        guess runs) unchanged since it was written (a webhook may have finished)."""
        reply = self.reply
        return (
            reply is not None
            and reply.error is None
            and history_revision == self.history_revision
            and same_turn(reply.user_text or "", text)
            and responder_state() == self.responder_state
        )

    def went_on(self, text: str) -> None:
        """The caller's turn so far is now ``text``: a guess on other words is dropped."""
        if not self.guessing_on(text):
            self.discard("the caller went on")

    def discard(self, why: str, *, charge: bool = False) -> None:
        """Drop the running speculation unheard: cancel it, forget its held audio
        (``charge``: count its cost now, when its own task will not)."""
        cost = self.reply_cost or self.cost
        reply, _ = self.take()
        if reply is None:
            return
        reply.advance("discarded")
        reply.scope.cancel()
        if self.drop is not None:
            self.drop(reply)
        if charge:
            cost.charge(reply)
        logger.info("call=%s: speculative reply %d discarded: %s", self.call_id, reply.id, why)

    def take(self) -> tuple[Reply | None, Responder | None]:
        """The running speculation and its responder copy; none is running afterwards."""
        taken = self.reply, self.successor
        self.reply = self.successor = None
        self.reply_cost = None
        return taken

    def end_turn(self, turn: TurnMetrics | None, *, promoted: bool = False) -> None:
        """The caller's turn is over: a guess it did not promote is dropped, and its
        speculations' cost goes to ``turn`` (or, with no turn to answer, to the call's
        unattached costs); the next turn starts afresh."""
        if not promoted:
            self.discard("the turn ended without it")
        if turn is not None:
            self.cost.attach(turn, promoted=promoted)
        elif self.cost.started:
            self.unattached.append(self.cost)
        self.cost = SpeculationCost()

    def settle(self, record: CallRecord) -> None:
        """The call is over: the running guess is dropped (and charged), and the costs no
        turn's metrics hold (turns with no answer, the last turn) go into ``record``."""
        self.discard("the call ended", charge=True)
        pending = [self.cost] if self.cost.started else []
        for cost in [*self.unattached, *pending]:
            record.speculations += cost.started
            record.speculations_discarded += cost.started
            record.discarded_input_tokens += cost.discarded_input_tokens
            record.discarded_output_tokens += cost.discarded_output_tokens


class QuietAfterFinal:
    """The core's likely-over signal, for an STT with none of its own: a final transcript
    with nothing pending, then ``quiet_s`` with no event from the STT. One timer per call,
    moved on by each final; ``fire`` is called when the quiet has lasted."""

    def __init__(self, quiet_s: float, fire: Callable[[], None]) -> None:
        self.quiet_s = quiet_s
        self._fire = fire
        self._events = 0  # STT events so far
        self._final: tuple[int, float] = (0, 0.0)  # the latest final: (event, time)
        self._waiting = False

    def detach(self) -> None:
        """The call is over: drop ``fire`` (the session's), so no cycle keeps the call."""
        self._fire = detached

    def heard(self) -> None:
        """Any event from the STT (words, voice, an end of turn)."""
        self._events += 1

    def final(self, tg: TaskGroup) -> None:
        """The event just heard was a final transcript with nothing pending."""
        self._final = (self._events, anyio.current_time())
        if not self._waiting:
            self._waiting = True
            spawn(tg, self._wait)

    async def _wait(self) -> None:
        try:
            while True:
                event, since = self._final
                await anyio.sleep(max(0.0, since + self.quiet_s - anyio.current_time()))
                if self._final[0] != event:
                    continue  # a newer final: the quiet is counted from it
                if event == self._events:  # nothing from the STT since
                    self._fire()
                return
        finally:
            self._waiting = False
