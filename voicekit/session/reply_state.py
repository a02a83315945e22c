"""One reply's state: its words, what of it was heard, and where it is in its life
(:data:`PlaybackState`, changed only through :meth:`Reply.advance`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import anyio

from voicekit.llm import Message, Usage
from voicekit.records import ReplyStatus, TurnMetrics
from voicekit.session.actions import PendingAction
from voicekit.session.history import ToolStep
from voicekit.session.responder import Turn
from voicekit.session.spoken import SpokenText

__all__ = ["HeldItem", "PlaybackState", "Reply", "ReplyKind", "RequestMeter"]

ReplyKind = Literal["answer", "greeting", "prompt", "farewell", "apology", "voicemail", "resume"]

# Where a reply is in its life. Every change goes through Reply.advance, which allows only
# these moves; the rest of a reply's bookkeeping (its text, its error, whether the session
# has recorded it) is data, not state.
#   speculative -> confirmed    the caller's turn ended with the words it answered
#   speculative -> discarded    it did not (other words, more speech, the call ended):
#                               its held audio and its text are dropped, never heard
#   confirmed -> speaking       its first frame went to the line
#   speaking -> played          the far end confirmed its last frame (or stopped answering)
#   confirmed|speaking -> interrupted   a barge-in, or a new turn, cut it
#   confirmed -> played         a reply with no audio at all
# A reply that is not a speculation starts confirmed.
PlaybackState = Literal[
    "speculative", "confirmed", "speaking", "played", "interrupted", "discarded"
]
_MOVES: dict[PlaybackState, frozenset[PlaybackState]] = {
    "speculative": frozenset({"confirmed", "discarded"}),
    "confirmed": frozenset({"speaking", "played", "interrupted"}),
    "speaking": frozenset({"played", "interrupted"}),
    "played": frozenset(),
    "interrupted": frozenset(),
    "discarded": frozenset(),
}
# What a held reply keeps until it is confirmed: a frame, or a mark's name.
HeldItem = tuple[bytes | None, str | None]


@dataclass(eq=False)
class Reply:
    """State of one reply, shared by the pipeline and the session."""

    id: int
    kind: ReplyKind
    metrics: TurnMetrics
    fixed_text: str | None = None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    spoken: SpokenText = field(default_factory=SpokenText)
    pieces: list[str] = field(default_factory=list)
    heard_ms: float = 0.0
    state: PlaybackState = "confirmed"
    audio_done: bool = False  # the pipeline queued all of its audio
    played: anyio.Event = field(default_factory=anyio.Event)  # set on entering "played"
    done: anyio.Event = field(default_factory=anyio.Event)  # recorded by the session
    finished: bool = False  # the session has recorded it (set first, so once only)
    error: BaseException | None = None
    tool_steps: list[ToolStep] = field(default_factory=list)
    tool_calls_run: int = 0
    filler_used: bool = False
    turn: Turn | None = None  # a responder's turn decides the words (else LLM or fixed text)
    text_complete: bool = False  # every piece of the reply's text was written
    after: PendingAction | None = None  # what the responder asked for once the reply is over
    # A speculation: the caller's words it answers (not yet in the history), and its
    # frames and marks, held back from playout until it is confirmed.
    user_text: str | None = None
    held: list[HeldItem] | None = None
    confirmed: anyio.Event = field(default_factory=anyio.Event)  # set on leaving speculative
    # Characters sent to and streamed from LLM requests cut off before their provider
    # reported usage: what they cost can still be estimated.
    unreported_chars_in: int = 0
    unreported_chars_out: int = 0

    def __post_init__(self) -> None:
        if self.state == "speculative":
            self.held = []
        else:
            self.confirmed.set()

    def fail(self, exc: BaseException) -> None:
        """Keep ``exc`` as the reply's error, without its traceback and chained causes:
        their frames point back at the reply and its pipeline, and would keep a finished
        call alive until a full garbage collection."""
        exc.__traceback__ = None
        exc.__context__ = exc.__cause__ = None
        self.error = exc

    def advance(self, to: PlaybackState) -> bool:
        """Move to ``to`` if the reply's life allows it from where it is; False (and no
        change) otherwise: a mark after a barge-in, a second final mark."""
        if to not in _MOVES[self.state]:
            return False
        self.state = to
        if to == "played":
            self.played.set()
        elif to == "confirmed":
            self.confirmed.set()
        return True

    @property
    def speculative(self) -> bool:
        return self.state == "speculative"

    @property
    def discarded(self) -> bool:
        return self.state == "discarded"

    @property
    def interrupted(self) -> bool:
        return self.state == "interrupted"

    @property
    def started_playing(self) -> bool:
        """Whether any of its audio went to the line (whatever happened since)."""
        return self.metrics.first_frame_sent is not None

    @property
    def playing(self) -> bool:
        return self.state == "speaking"

    @property
    def closes_call(self) -> bool:
        """A goodbye, a voicemail message, or a reply that ends in a hang-up or a
        transfer: it plays to its end and is never cut or answered over."""
        return self.kind in ("farewell", "voicemail") or self.after is not None

    @property
    def text(self) -> str:
        return " ".join(self.pieces)

    def heard_text(self) -> str:
        return self.spoken.heard(self.heard_ms)

    def outcome(self, *, caller_gone: bool) -> ReplyStatus:
        """How the reply ended, for its turn's record."""
        if self.state == "played" and self.error is None:
            return "played"
        if self.state == "interrupted":
            return "interrupted"
        if self.error is not None:
            return "failed"
        return "hung_up" if caller_gone else "cut_off"

    def segments(self) -> list[tuple[str, ToolStep | None]]:
        """The reply's text cut where the model called tools: each piece of text with the
        step that followed it, then the text after the last step."""
        parts: list[tuple[str, ToolStep | None]] = []
        start = 0
        for step in self.tool_steps:
            parts.append((" ".join(self.pieces[start : step.pieces_before]), step))
            start = step.pieces_before
        parts.append((" ".join(self.pieces[start:]), None))
        return parts

    def step_messages(self) -> list[Message]:
        """This reply's tool calls and results so far, for its next LLM request."""
        return [m for text, step in self.segments() if step for m in step.messages(text)]

    def add_usage(self, usage: Usage) -> None:
        m = self.metrics
        for name in ("input_tokens", "output_tokens", "cached_input_tokens"):
            value = getattr(usage, name)
            if value is not None:
                setattr(m, name, (getattr(m, name) or 0) + value)


@dataclass(slots=True)
class RequestMeter:
    """The characters of one LLM request of a reply: if the request ends before its
    provider reports usage (cancelled, failed), :meth:`close` charges them to the reply
    as unreported, so a dropped speculation's cost can still be estimated."""

    reply: Reply
    sent: int
    received: int = 0
    reported: bool = False

    def close(self) -> None:
        if not self.reported:
            self.reply.unreported_chars_in += self.sent
            self.reply.unreported_chars_out += self.received
