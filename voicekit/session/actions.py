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
    text = destination.strip()
    if text.lower().startswith(("sip:", "sips:")):
        return text.lower()
    return _PUNCTUATION.sub("", text)


@dataclass(frozen=True, slots=True)
class PendingAction:
    kind: Literal["end", "transfer"]
    destination: str | None = None


class CallActions:
    """The :class:`~voicekit.tools.ToolContext` a call's tools receive."""

    def __init__(self, call: CallInfo, transfer_allowlist: Sequence[str]) -> None:
        self._call = call
        self._allowed = {_normalize(d) for d in transfer_allowlist}
        self.pending: PendingAction | None = None

    @property
    def call(self) -> CallInfo:
        return self._call

    def end_call(self) -> None:
        self.pending = PendingAction("end")

    def transfer(self, to: str) -> None:
        if not self.may_transfer_to(to):
            raise PermissionError(f"{to} is not in [agent] transfer_allowlist")
        self.pending = PendingAction("transfer", to)

    def may_transfer_to(self, to: str) -> bool:
        return _normalize(to) in self._allowed

    def take(self) -> PendingAction | None:
        action, self.pending = self.pending, None
        return action


class Keypad:
    """Collects DTMF digits into sequences and hands each to ``on_keys`` (see the module
    docstring). Its timer runs in the call's task group."""

    def __init__(self, gap_s: float, on_keys: Callable[[str], None]) -> None:
        self.gap_s = gap_s
        self._on_keys: Callable[[str], None] | None = on_keys
        self._digits = ""
        self._presses = 0

    def press(self, digit: str, tg: TaskGroup | None) -> None:
        self._digits += digit
        self._presses += 1
        if digit == "#":
            self._done()
        elif tg is not None:
            spawn(tg, self._after_gap, self._presses)

    async def _after_gap(self, presses: int) -> None:
        await anyio.sleep(self.gap_s)
        if self._presses == presses:  # no key since this one
            self._done()

    def _done(self) -> None:
        digits, self._digits = self._digits, ""
        if digits and self._on_keys is not None:
            self._on_keys(digits)

    def detach(self) -> None:
        """Drop the callback once the call is over: it is the session's bound method, so
        keeping it would make a cycle that only a full garbage collection frees."""
        self._on_keys = None
