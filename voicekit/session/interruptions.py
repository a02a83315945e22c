"""Barge-in: whether the caller's words cut the agent's playing reply.

The words rules are in bargein.py (enough words, not only backchannels, not an echo of
the agent). This applies them to the reply that is playing: a goodbye, a voicemail
message or a reply that ends in a hang-up or a transfer is never cut. The reply a
barge-in cut is kept until the caller's turn ends, when it tells whether the barge-in
was real (the turn is answered) or noise and "uh-huh" (the reply resumes where the
caller stopped hearing it).
"""

from __future__ import annotations

import logging
import time

from voicekit.config.sections import TurnSettings
from voicekit.records import TranscriptEntry
from voicekit.session.actions import CallActions
from voicekit.session.bargein import is_backchannel, is_interruption
from voicekit.session.caller import CallerTurns
from voicekit.session.replies import Replies
from voicekit.session.resume import CutReply

__all__ = ["BargeIn"]

logger = logging.getLogger(__name__)


class BargeIn:
    """Cuts the playing reply when the caller's words interrupt it (:meth:`check`)."""

    def __init__(
        self,
        *,
        replies: Replies,
        caller: CallerTurns,
        actions: CallActions,
        transcript: list[TranscriptEntry],
        turn: TurnSettings,
        call_id: str,
    ) -> None:
        self._replies = replies
        self._transcript = transcript
        self._caller = caller
        self._actions = actions
        self.turn = turn
        self.call_id = call_id
        self.cut: CutReply | None = None  # a reply a barge-in cut, until the turn is known

    def pending(self) -> bool:
        """A barge-in cut a reply and the caller's turn has not ended yet."""
        return self.cut is not None

    def take_cut(self) -> CutReply | None:
        """The reply the last barge-in cut, if it may resume; forgotten once taken."""
        cut, self.cut = self.cut, None
        return cut

    def agent_asked(self) -> bool:
        """Whether the caller has heard the playing reply ask a question: a "sure" or
        "right" after it may be the answer, not a backchannel."""
        reply = self._replies.current
        return reply is not None and "?" in reply.heard_text()

    async def check(self) -> None:
        """The caller's words so far: cut the playing reply if they interrupt it."""
        reply = self._replies.current
        if reply is None or not reply.playing:
            return
        if reply.closes_call:
            return
        recent = " ".join(r.text for r in (self._replies.last, reply) if r is not None)
        if is_interruption(
            self._caller.text,
            recent,
            min_words=self.turn.min_interruption_words,
            echo_filter=self.turn.echo_filter,
            backchannels=self.turn.backchannels,
        ):
            logger.info(
                "call=%s: barge-in on reply %d: %r", self.call_id, reply.id, self._caller.text
            )
            # A reply that asked for a hang-up or transfer (a tool) is not resumed: its
            # action goes with it; the caller's turn is answered instead.
            resumable = self.turn.resume_after_false_barge_in and self._actions.pending is None
            await self._replies.interrupt()
            self.cut = CutReply.of(reply) if resumable else None

    def listener_words(self, text: str, cut: CutReply | None) -> bool:
        """Whether the caller's ended turn ``text`` was a listener's, not a turn: noise or
        "uh-huh" after a barge-in (the cut reply resumes where the caller stopped hearing
        it), or "uh-huh" while the agent talks and has not asked anything (nothing
        happens). Either way it is kept in the transcript as a backchannel."""
        backchannel = bool(text) and is_backchannel(text, self.turn.backchannels)
        if cut is not None and (not text or backchannel) and self._replies.current is None:
            logger.info("call=%s: false barge-in (%r): resuming", self.call_id, text)
            if text:
                self._keep(text)
            self._replies.start("resume", cut.remainder)
            return True
        if not text:
            return True
        if backchannel and self._replies.speaking and not self.agent_asked():
            logger.info("call=%s: backchannel while the agent speaks: %r", self.call_id, text)
            self._keep(text)
            return True
        return False

    def _keep(self, text: str) -> None:
        """Words of a listener, kept in the transcript as a backchannel."""
        self._transcript.append(TranscriptEntry("user", text, time.time(), backchannel=True))
