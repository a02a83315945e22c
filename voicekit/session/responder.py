"""The responder seam: what decides a reply's words, apart from what speaks them.

The session owns audio, playout, marks and barge-in; a responder (the call-flow engine,
or anything a user writes) decides what each reply says and does, through a
:class:`Speech` handed to it for the length of one reply. A reply's scope covers the
responder too: a barge-in cancels it wherever it is (an LLM stream, a webhook, a decision).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from voicekit.llm import Tool, ToolCall
from voicekit.telephony import CallInfo

__all__ = ["Responder", "ResponderFactory", "Speech", "Turn"]


class Speech(Protocol):
    """What a responder can do within one reply."""

    @property
    def can_answer(self) -> bool:
        """Whether an LLM is there to :meth:`answer` and :meth:`decide`."""
        ...

    async def say(self, text: str, *, cache: bool = False) -> None:
        """Speak ``text`` as written (no LLM). ``cache``: the text was known before the
        call (it holds nothing the caller said or a webhook returned), so its audio may
        come from, and go into, the phrase cache."""
        ...

    async def answer(
        self,
        *,
        instructions: str = "",
        tools: Sequence[Tool] = (),
        on_call: Callable[[ToolCall], bool] | None = None,
        hold: Callable[[], Awaitable[None]] | None = None,
    ) -> str:
        """Speak what the LLM answers to the conversation so far, ``instructions`` added
        to its system message and ``tools`` offered besides the call's own. ``on_call``
        sees each tool call first; a call it returns True for is the responder's (not
        run, not sent back to the model). With ``hold``, the request starts at once but
        nothing is spoken and no tool runs until ``hold()`` returns: cancel the task
        before then and the answer is discarded unheard. Returns the text it spoke."""
        ...

    async def decide(
        self,
        *,
        instructions: str,
        text: str,
        tools: Sequence[Tool],
        timeout_s: float,
    ) -> list[ToolCall]:
        """A short LLM request that speaks nothing: the tool calls it makes about the
        caller's ``text`` (none after ``timeout_s``, or when it fails)."""
        ...

    async def confirmed(self) -> None:
        """Return once this reply answers a turn the caller really ended. A speculative
        reply (written before the turn was known to be over) waits here until it is
        promoted, and is cancelled if it never is: await this before any side effect
        (a webhook, a booking). Returns at once for every other reply."""
        ...

    def end_call(self) -> None:
        """Hang up once this reply has played; from now on it cannot be interrupted."""
        ...

    def transfer(self, destination: str) -> None:
        """Transfer the call once this reply is over (``[agent] transfer_allowlist``
        applies); from now on it cannot be interrupted."""
        ...


Turn = Callable[[Speech], Awaitable[None]]


class Responder(Protocol):
    """Decides the replies of one call."""

    def opening(self) -> Turn | None:
        """The agent's first words, or None when the caller speaks first."""
        ...

    def reply_to(self, text: str) -> Turn:
        """The reply to the caller's turn ``text``."""
        ...

    def state(self) -> Mapping[str, Any]:
        """The responder's state as JSON-ready data, for the call record and each turn's
        metrics (a flow: its node, variables and the path taken)."""
        ...

    def turn_state(self) -> Mapping[str, Any]:
        """The state after the latest turn, for that turn's metrics: like :meth:`state`
        but holding only what the turn itself did (a long call's record stays linear)."""
        ...

    async def aclose(self) -> None:
        """The call is over."""
        ...


ResponderFactory = Callable[[CallInfo], Responder]
