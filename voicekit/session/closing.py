"""How a call ends: silence, maximum length, voicemail, shutdown, hang-ups from either
side, and what a reply leaves to do (an apology after a failure; a hang-up or a transfer a
tool asked for, once the reply has played).

:class:`CallEnding` holds these rules and the state they need (why the call is ending,
whether it is closing, the silence clock). It is kept apart from the session because
"ending a call well" is its own set of rules: the agent says farewell and hangs up only
after the farewell has played (its last mark); a hang-up by the far end stops at once.
It reaches the session through three calls only (:class:`EndingHost`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from voicekit.config.sections import AgentSettings, TurnSettings
from voicekit.session.actions import CallActions
from voicekit.session.silence import SilencePolicy
from voicekit.tasks import spawn

if TYPE_CHECKING:
    from voicekit.session.reply import Reply, ReplyKind

__all__ = ["CallEnding", "EndingHost", "caller_ended"]

logger = logging.getLogger(__name__)


def caller_ended(reason: str) -> bool:
    """Whether an end reason means the far end went away (hung up, or its stream did)."""
    return reason in ("caller_hangup", "stream_closed") or reason.startswith("hangup:")


@dataclass(frozen=True, slots=True)
class EndingHost:
    """What the ending rules need from the call's session: three calls."""

    say: Callable[[ReplyKind, str], Reply]  # start a reply of fixed text (a farewell...)
    interrupt: Callable[[], Awaitable[object]]  # cut the reply in progress (barge-in's step)
    busy: Callable[[], bool]  # a reply is running or the caller is speaking: no silence


class CallEnding:
    """The call-ending rules of one call; see the module docstring."""

    def __init__(
        self,
        host: EndingHost,
        *,
        agent: AgentSettings,
        turn: TurnSettings,
        actions: CallActions,
        call_id: str,
        hangup: Callable[[], Awaitable[None]] | None = None,
        transfer: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._host: EndingHost | None = host
        self.agent = agent
        self.turn = turn
        self.actions = actions
        self.call_id = call_id
        self._hangup = hangup
        self._transfer = transfer
        self._tg: TaskGroup | None = None
        self.ended = anyio.Event()  # set once: the session stops
        self.end_reason = "unknown"
        self.closing = False  # the agent is ending the call: no new turn is answered
        self.transferring = False  # a transfer request is out
        self._close_reason: str | None = None
        self._stop_reason = "unknown"  # what stopped the call, before _close_reason
        self._machine_pending = False
        self.started = 0.0
        self.last_activity = 0.0  # the silence clock: the last word from either side
        self.idle_prompts_used = 0

    def attach(self, tg: TaskGroup | None) -> None:
        """The call's task group (None once it is over: nothing more may start)."""
        self._tg = tg

    def detach(self) -> None:
        """The call is over: forget the task group and the session (no cycle is kept)."""
        self._tg = None
        self._host = None

    def begin(self, now: float) -> None:
        self.started = self.last_activity = now

    @property
    def machine_pending(self) -> bool:
        """A machine answered before the call started (see :meth:`machine_answered`)."""
        return self._machine_pending

    # -- control from outside (webhooks) --------------------------------------------------------

    def caller_hung_up(self, reason: str = "caller_hangup") -> None:
        """The telephony provider says the call is over: stop now, no farewell."""
        self.end(reason)

    def machine_answered(self) -> None:
        """A machine answered (provider AMD): apply ``turn.voicemail_action``."""
        if self._tg is None:
            self._machine_pending = True
            return
        self._machine_pending = False
        if self.closing or self.turn.voicemail_action == "ignore":
            return
        spawn(self._tg, functools.partial(self.finish, "voicemail", say=self._voicemail_says()))

    async def voicemail_heard(self, phrase: str) -> None:
        """The caller's first words were a voicemail greeting's (``phrase``): apply
        ``turn.voicemail_action`` as for a machine the provider detected."""
        logger.info("call=%s: voicemail detected (%r)", self.call_id, phrase)
        await self.finish("voicemail", say=self._voicemail_says())

    def _voicemail_says(self) -> str | None:
        action = self.turn.voicemail_action
        return self.turn.voicemail_message if action == "leave_message" else None

    def shut_down(self) -> None:
        """The server is shutting down and the grace period is over: say farewell, hang up."""
        if self._tg is not None and not self.closing:
            spawn(self._tg, self.finish, "shutdown")
        elif self._tg is None:
            self.end("shutdown")

    def end(self, reason: str) -> None:
        """Stop the call now (once; the first reason, or the agent's, is kept)."""
        if not self.ended.is_set():
            # Once the agent is ending the call, the stream stopping (our own hang-up
            # arriving at the far end) does not change why the call ended.
            self.end_reason = self._close_reason or reason
            self._stop_reason = reason
            self.ended.set()

    # -- what a reply leaves to do ----------------------------------------------------------------

    def after_reply(self, reply: Reply) -> None:
        """A reply was recorded: run what it asked for, or apologise for its failure."""
        if reply.after is not None and not self.closing and self._tg is not None:
            self.actions.take()  # the responder's request comes first
            if reply.after.kind == "end":
                spawn(self._tg, functools.partial(self.finish, "agent_hangup", say=None))
            elif reply.after.destination is not None:
                if self.actions.may_transfer_to(reply.after.destination):
                    spawn(self._tg, self._transfer_to, reply.after.destination)
                else:
                    logger.error(
                        "call=%s: transfer to %s refused: not in [agent] transfer_allowlist",
                        self.call_id,
                        reply.after.destination,
                    )
                    self._apologise()
            return
        action = self.actions.take()
        if reply.error is not None and reply.kind == "answer" and not self.closing:
            self._apologise()
        elif action is not None and reply.metrics.status == "played" and self._tg is not None:
            if action.kind == "end":
                spawn(self._tg, functools.partial(self.finish, "agent_hangup", say=None))
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
        self.transferring = True
        try:
            await self._transfer(destination)
        except Exception as exc:
            self.transferring = False
            self._close_reason = None
            logger.error("call=%s: transfer to %s failed: %s", self.call_id, destination, exc)
            if self.ended.is_set():  # the caller hung up meanwhile
                self.end_reason = self._stop_reason
            else:
                self._apologise()
            return
        self.end("transferred")

    def _apologise(self) -> None:
        if self._host is not None and self._tg is not None:
            self._host.say("apology", self.agent.apology)

    # -- silence, call length, goodbye ---------------------------------------------------------

    async def watchdog(self) -> None:
        """Prompt after silence, then hang up; end the call at its maximum length."""
        policy = SilencePolicy(
            self.turn.idle_timeout_s, len(self.turn.idle_prompts), self.turn.max_call_seconds
        )
        while not self.closing and self._host is not None:
            now = anyio.current_time()
            action, wake = policy.decide(
                now=now,
                started=self.started,
                last_activity=self.last_activity,
                quiet=not self._host.busy(),
                prompted=self.idle_prompts_used,
            )
            if action == "prompt":
                self.idle_prompts_used += 1
                self._host.say("prompt", self.turn.idle_prompts[self.idle_prompts_used - 1])
            elif action != "wait":
                await self.finish("idle" if action == "hang_up_idle" else "max_duration")
                return
            else:
                await anyio.sleep(wake - now)

    async def finish(self, reason: str, *, say: str | None = "") -> None:
        """Say goodbye, wait until it has played (its last mark), hang up, end the session.

        ``say`` defaults to the configured farewell; ``None`` hangs up without a word.
        """
        if self.closing:
            return
        self.closing = True
        self._close_reason = reason
        host = self._host
        if host is not None:
            await host.interrupt()
            text = self.agent.farewell if say == "" else say
            if text:
                reply = host.say("voicemail" if reason == "voicemail" else "farewell", text)
                await reply.done.wait()
        if self._hangup is not None:
            try:
                await self._hangup()
            except Exception as exc:
                logger.warning("call=%s: hang-up failed: %s", self.call_id, exc)
        self.end(reason)
