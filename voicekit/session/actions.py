"""What the model's tools and the caller's keypad may do to a call.

A tool asks; the session acts at the right moment: ``end_call`` and ``transfer_call``
take effect once the reply in progress (the goodbye, "I'll put you through") has played,
and only if the caller heard it (a barge-in drops the request, and the model, seeing its
tool result in the history, can ask again). A transfer goes only to a destination of
``[agent] transfer_allowlist``: the model cannot dial a number of its choosing.

Keys the caller presses are collected into one message, ``[caller pressed 1234#]``: a key
followed by ``dtmf_gap_s`` of quiet, or by ``#``, ends the sequence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import anyio
from anyio.abc import TaskGroup

from voicekit.tasks import spawn
from voicekit.telephony import CallInfo

__all__ = ["CallActions", "Keypad", "PendingAction"]

_PUNCTUATION = re.compile(r"[\s().-]")


def _normalize(destination: str) -> str:
    """The form destinations are compared in: a number without spaces, dashes, dots or
    brackets; a SIP URI with its scheme and host in lower case (its user part is
    case-sensitive: ``sip:Desk@pbx`` and ``sip:desk@pbx`` may be different phones)."""
    text = destination.strip()
    scheme, colon, rest = text.partition(":")
    if colon and scheme.lower() in ("sip", "sips"):
        user, at, host = rest.rpartition("@")
        return f"{scheme.lower()}:{user}{at}{host.lower()}"
    return _PUNCTUATION.sub("", text)


@dataclass(frozen=True, slots=True)
class PendingAction:
    kind: Literal["end", "transfer"]
    destination: str | None = None


class CallActions:
    """The :class:`~voicekit.tools.ToolContext` a call's tools receive."""

    def __init__(self, call: CallInfo, transfer_allowlist: Sequence[str]) -> None:
        self._call = call
        # Compared in normal form; what is dialled is the entry as configured, never the
        # model's spelling of it.
        self._allowed = {_normalize(d): d.strip() for d in transfer_allowlist}
        self.pending: PendingAction | None = None

    @property
    def call(self) -> CallInfo:
        return self._call

    def end_call(self) -> None:
        self.pending = PendingAction("end")

    def transfer(self, to: str) -> None:
        configured = self._allowed.get(_normalize(to))
        if configured is None:
            raise PermissionError(f"{to} is not in [agent] transfer_allowlist")
        self.pending = PendingAction("transfer", configured)

    def may_transfer_to(self, to: str) -> bool:
        return _normalize(to) in self._allowed

    def take(self) -> PendingAction | None:
        action, self.pending = self.pending, None
        return action


class Keypad:
    """Collects DTMF digits into sequences and hands each to ``on_keys`` (see the module
    docstring). One timer, in the call's task group, ends a sequence; a sequence holds at
    most ``MAX_DIGITS`` (more are dropped), and sequences reach the model at most one per
    ``gap_s``: a caller holding ``#`` down cannot start ten replies a second."""

    MAX_DIGITS = 32

    def __init__(self, gap_s: float, on_keys: Callable[[str], None]) -> None:
        self.gap_s = gap_s
        self._on_keys: Callable[[str], None] | None = on_keys
        self._digits = ""
        self._due: float | None = None  # when the sequence is sent
        self._last_sent = -math.inf
        self._timing = False

    def press(self, digit: str, tg: TaskGroup | None) -> None:
        if len(self._digits) < self.MAX_DIGITS:
            self._digits += digit
        now = anyio.current_time()
        complete = digit == "#" or len(self._digits) >= self.MAX_DIGITS
        self._due = max(now if complete else now + self.gap_s, self._last_sent + self.gap_s)
        if not self._timing and tg is not None:
            self._timing = True
            spawn(tg, self._timer)

    async def _timer(self) -> None:
        try:
            while self._due is not None:
                wait = self._due - anyio.current_time()
                if wait > 0:
                    await anyio.sleep(wait)
                    continue
                self._due = None
                digits, self._digits = self._digits, ""
                self._last_sent = anyio.current_time()
                if digits and self._on_keys is not None:
                    self._on_keys(digits)
        finally:
            self._timing = False

    def detach(self) -> None:
        """Drop the callback once the call is over: it is the session's bound method, so
        keeping it would make a cycle that only a full garbage collection frees."""
        self._on_keys = None
