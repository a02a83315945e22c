"""How a call ends: silence, maximum length, voicemail, shutdown, hang-ups from either
side, and what a reply leaves to do (an apology after a failure; a hang-up or a transfer a
tool asked for, once the reply has played).

A mixin of :class:`~voicekit.session.session.CallSession`, kept apart because "ending a
call well" is its own set of rules: the agent says farewell and hangs up only after the
farewell has played (its last mark); a hang-up by the far end stops at once.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from voicekit.config.sections import AgentSettings, TurnSettings
from voicekit.session.actions import CallActions
from voicekit.session.caller import CallerTurns
from voicekit.session.silence import SilencePolicy
from voicekit.tasks import spawn

if TYPE_CHECKING:
    from voicekit.records import TurnMetrics
    from voicekit.session.reply import Reply, ReplyKind
    from voicekit.session.responder import Turn

__all__ = ["CallEnding", "caller_ended"]

logger = logging.getLogger(__name__)


def caller_ended(reason: str) -> bool:
    """Whether an end reason means the far end went away (hung up, or its stream did)."""
    return reason in ("caller_hangup", "stream_closed") or reason.startswith("hangup:")


class CallEnding:
    """Mixed into CallSession; ``self`` is the session."""

    # State owned by CallSession that the rules below read and write.
    agent: AgentSettings
    turn: TurnSettings
    call_id: str
    end_reason: str
    _tg: TaskGroup | None
    _ended: anyio.Event
    _closing: bool
    _close_reason: str | None
    _stop_reason: str
    _machine_pending: bool
    _current: Reply | None
    _caller: CallerTurns
    _started: float
    _last_activity: float
    _idle_prompts_used: int
    _hangup: Callable[[], Awaitable[None]] | None
    _transfer: Callable[[str], Awaitable[None]] | None
    actions: CallActions

    if TYPE_CHECKING:  # implemented by CallSession

        def _start_reply(
            self,
            kind: ReplyKind,
            text: str | None = None,
            metrics: TurnMetrics | None = None,
            turn: Turn | None = None,
        ) -> Reply: ...

        async def _interrupt(self) -> Reply | None: ...

    # -- control from outside (webhooks) --------------------------------------------------------

    def caller_hung_up(self, reason: str = "caller_hangup") -> None:
        """The telephony provider says the call is over: stop now, no farewell."""
        self._end(reason)

    def machine_answered(self) -> None:
        """A machine answered (provider AMD): apply ``turn.voicemail_action``.

        Called before :meth:`run`, it takes effect as soon as the session starts."""
        if self._tg is None:
            self._machine_pending = True
            return
        if self._closing or self.turn.voicemail_action == "ignore":
            return
        say = self.turn.voicemail_message if self.turn.voicemail_action == "leave_message" else None
        spawn(self._tg, functools.partial(self._finish, "voicemail", say=say))

    def shut_down(self) -> None:
        """The server is shutting down and the grace period is over: say farewell, hang up."""
        if self._tg is not None and not self._closing:
            spawn(self._tg, self._finish, "shutdown")
        elif self._tg is None:
            self._end("shutdown")

    def _end(self, reason: str) -> None:
        if not self._ended.is_set():
            # Once the agent is ending the call, the stream stopping (our own hang-up
            # arriving at the far end) does not change why the call ended.
            self.end_reason = self._close_reason or reason
            self._stop_reason = reason
            self._ended.set()

    # -- what a reply leaves to do ----------------------------------------------------------------

    def _after_reply(self, reply: Reply) -> None:
        if reply.after is not None and not self._closing and self._tg is not None:
            self.actions.take()  # the responder's request comes first
            if reply.after.kind == "end":
                spawn(self._tg, functools.partial(self._finish, "agent_hangup", say=None))
            elif reply.after.destination is not None:
                if self.actions.may_transfer_to(reply.after.destination):
                    spawn(self._tg, self._transfer_to, reply.after.destination)
                else:
                    logger.error(
                        "call=%s: transfer to %s refused: not in [agent] transfer_allowlist",
                        self.call_id,
                        reply.after.destination,
                    )
                    self._start_reply("apology", self.agent.apology)
            return
        action = self.actions.take()
        if reply.error is not None and reply.kind == "answer" and not self._closing:
            self._start_reply("apology", self.agent.apology)
        elif action is not None and reply.metrics.status == "played" and self._tg is not None:
            if action.kind == "end":
                spawn(self._tg, functools.partial(self._finish, "agent_hangup", say=None))
            elif action.destination is not None:
                spawn(self._tg, self._transfer_to, action.destination)

    async def _transfer_to(self, destination: str) -> None:
        if self._transfer is None:
            logger.error("call=%s: cannot transfer: the telephony gives no way to", self.call_id)
            return
        logger.info("call=%s: transferring to %s", self.call_id, destination)
        # The far end may drop our leg (a hang-up webhook, the stream stopping) before the
        # transfer request returns: the call still ended because it was transferred.
        self._close_reason = "transferred"
        try:
            await self._transfer(destination)
        except Exception as exc:
            self._close_reason = None
            logger.error("call=%s: transfer to %s failed: %s", self.call_id, destination, exc)
            if self._ended.is_set():  # the caller hung up meanwhile
                self.end_reason = self._stop_reason
            else:
                self._start_reply("apology", self.agent.apology)
            return
        self._end("transferred")

    # -- silence, call length, goodbye ---------------------------------------------------------

    async def _watchdog(self) -> None:
        policy = SilencePolicy(
            self.turn.idle_timeout_s, len(self.turn.idle_prompts), self.turn.max_call_seconds
        )
        while not self._closing:
            now = anyio.current_time()
            action, wake = policy.decide(
                now=now,
                started=self._started,
                last_activity=self._last_activity,
                quiet=self._current is None and not self._caller.speaking,
                prompted=self._idle_prompts_used,
            )
            if action == "prompt":
                self._idle_prompts_used += 1
                self._start_reply("prompt", self.turn.idle_prompts[self._idle_prompts_used - 1])
            elif action != "wait":
                await self._finish("idle" if action == "hang_up_idle" else "max_duration")
                return
            else:
                await anyio.sleep(wake - now)

    async def _finish(self, reason: str, *, say: str | None = "") -> None:
        """Say goodbye, wait until it has played (its last mark), hang up, end the session.

        ``say`` defaults to the configured farewell; ``None`` hangs up without a word.
        """
        if self._closing:
            return
        self._closing = True
        self._close_reason = reason
        await self._interrupt()
        text = self.agent.farewell if say == "" else say
        if text:
            reply = self._start_reply("voicemail" if reason == "voicemail" else "farewell", text)
            await reply.done.wait()
        if self._hangup is not None:
            try:
                await self._hangup()
            except Exception as exc:
                logger.warning("call=%s: hang-up failed: %s", self.call_id, exc)
        self._end(reason)
