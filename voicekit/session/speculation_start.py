"""When a call starts a speculative reply, and whether the running one answers the turn.

The session hears the caller; this decides, from what it heard and the state of the call,
whether a guess may start now (see speculation.py for what a guess is and what it costs).
The conditions are the ones that keep a guess from ever being wrong to play: only final
words, no reply playing, the call neither closing nor being transferred, an LLM to ask,
budget left for this turn. The cheap ones come first: a hostile STT may say "likely over"
after every word.
"""

from __future__ import annotations

from collections.abc import Callable

from anyio.abc import TaskGroup

from voicekit.config.sections import TurnSettings
from voicekit.session.bargein import is_backchannel
from voicekit.session.caller import CallerTurns
from voicekit.session.closing import CallEnding
from voicekit.session.history import ConversationHistory
from voicekit.session.replies import Replies
from voicekit.session.responder import Responder
from voicekit.session.speculation import QuietAfterFinal, SpeculativeResponder, Speculator
from voicekit.session.voicemail import VoicemailDetector
from voicekit.stt import Transcript
from voicekit.tasks import detached

__all__ = ["SpeculationStart"]


class SpeculationStart:
    """Starts a call's guesses (:meth:`speculate`) on the STT's signal or the core's own
    (:class:`QuietAfterFinal`), and says whether the running guess answers a turn."""

    def __init__(
        self,
        *,
        turn: TurnSettings,
        has_llm: bool,
        speculator: Speculator,
        caller: CallerTurns,
        replies: Replies,
        ending: CallEnding,
        history: ConversationHistory,
        voicemail: VoicemailDetector,
        responder: Callable[[], Responder | None],
        after_barge_in: Callable[[], bool],
    ) -> None:
        self.turn = turn
        self._has_llm = has_llm
        self._speculator = speculator
        self._caller = caller
        self._replies = replies
        self._ending = ending
        self._history = history
        self._voicemail = voicemail
        self._responder = responder
        self._after_barge_in = after_barge_in
        self._quiet = QuietAfterFinal(turn.speculation_quiet_ms / 1000, self.speculate)
        self._tg: TaskGroup | None = None

    def attach(self, tg: TaskGroup | None) -> None:
        """The call's task group while it runs (None once its tasks are over)."""
        self._tg = tg

    def detach(self) -> None:
        """The call is over: drop the callbacks that point back at it."""
        self._quiet.detach()
        self._responder = detached

    def heard(self) -> None:
        """Any event from the STT: the quiet after a final is broken."""
        self._quiet.heard()

    def heard_more(self, event: Transcript) -> None:
        """New words from the caller: a guess on other words is dropped; a final
        transcript with nothing pending may be the turn's last words."""
        if self._speculator.reply is not None:
            self._speculator.went_on(self._caller.text)
        if event.is_final and not self._caller.partial and self.turn.speculative and self._tg:
            self._quiet.final(self._tg)

    def answers(self, text: str) -> bool:
        """Whether a guess is running and answers the turn ``text`` as it now stands."""
        return self._speculator.matches(text, self._history.revision, self.responder_state)

    def responder_state(self) -> object:
        responder = self._responder()
        return dict(responder.state()) if responder is not None else None

    def speculate(self) -> None:
        """Start a reply to the turn's words so far, its audio held, if a guess may start."""
        if not self._allowed():
            return
        text = self._caller.text
        if (
            not text
            or (self._after_barge_in() and is_backchannel(text, self.turn.backchannels))
            or (self._caller.turns == 0 and self._voicemail.matches(text) is not None)
            or self._speculator.guessing_on(text)
        ):
            return
        turn, successor = None, None
        responder = self._responder()
        if responder is not None:
            if not isinstance(responder, SpeculativeResponder):
                return
            copy = responder.speculate(text)
            if copy is None:
                return
            turn, successor = copy
        self._replies.guess(text, turn, successor, self.responder_state())

    def _allowed(self) -> bool:
        return (
            self.turn.speculative
            and self._has_llm  # with no LLM, every reply is already immediate
            and self._tg is not None
            and not self._ending.closing
            and not self._ending.transferring
            and self._replies.current is None  # the history must be what the turn will see
            and not self._caller.partial
            and bool(self._caller.finals)
            and self._speculator.has_budget
        )
