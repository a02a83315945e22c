"""What the lifecycle hooks receive: per-turn latency timelines and the call record.

Plain data with no behaviour, so observers (analytics, CRM export, logging) can keep them
or serialise them (``dataclasses.asdict``) without holding on to live call objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

from voicekit.telephony import CallInfo

__all__ = ["CallRecord", "ReplyStatus", "ToolRun", "TranscriptEntry", "TurnMetrics"]

ReplyStatus = Literal["pending", "played", "interrupted", "failed", "hung_up", "cut_off"]

# The timeline of one turn, in the order the events usually happen. Each is seconds on
# the session's monotonic clock, or None when the step did not happen (e.g. a greeting
# turn has no user speech end). A speculative reply's LLM and TTS steps come before the
# STT's end of turn: that is the time it saved.
TIMELINE_FIELDS: tuple[str, ...] = (
    "user_speech_end",
    "turn_likely_over",
    "stt_end_of_turn",
    "llm_request",
    "llm_first_token",
    "first_segment",
    "tts_first_audio",
    "first_frame_sent",
    "first_mark_reached",
)


@dataclass(slots=True)
class ToolRun:
    """One tool the model called in a turn: what, for how long, and whether it failed."""

    name: str
    arguments: str
    ms: float
    error: str | None = None


@dataclass(slots=True)
class TurnMetrics:
    """One agent turn's latency timeline (monotonic seconds) and outcome."""

    turn_index: int
    user_text: str = ""
    agent_text: str = ""
    heard_text: str = ""
    interrupted: bool = False
    user_speech_end: float | None = None
    turn_likely_over: float | None = None  # the speculation this turn's reply came from
    stt_end_of_turn: float | None = None
    llm_request: float | None = None
    llm_first_token: float | None = None
    first_segment: float | None = None
    tts_first_audio: float | None = None
    first_frame_sent: float | None = None
    first_mark_reached: float | None = None
    error: str | None = None
    # How the reply ended: played to its end; interrupted (barge-in); failed; hung_up (the
    # caller hung up before it finished); cut_off (the call ended otherwise: shutdown,
    # an error); pending while it is still running.
    status: ReplyStatus = "pending"
    # Outbound pacing, from Playout: how late this process sent the turn's frames. A frame
    # later than the playout lead found the far end's buffer empty: an audible gap.
    frames_sent: int = 0
    max_frame_late_ms: float = 0.0
    underruns: int = 0
    # What the LLM reported (summed over the requests of a turn that called tools), and
    # the tools it called.
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    tools: list[ToolRun] = field(default_factory=list)
    # Phrases this turn played from the phrase cache, with no TTS round-trip.
    cached_phrases: int = 0
    # Speculative replies started for this turn before its end was known; "promoted"
    # when the reply is one of them, "discarded" when every one was dropped unheard (None:
    # none was started). The tokens the dropped ones cost: as the provider reported them,
    # or estimated at 4 characters a token for a request cancelled before it reported.
    speculations: int = 0
    speculation: Literal["promoted", "discarded"] | None = None
    discarded_input_tokens: int = 0
    discarded_output_tokens: int = 0
    # The call flow's state after this turn (node, variables, path), with a flow.
    flow: dict[str, Any] | None = None

    @property
    def ttft_ms(self) -> float | None:
        """The LLM's time to first token: request sent → first text."""
        if self.llm_request is None or self.llm_first_token is None:
            return None
        return (self.llm_first_token - self.llm_request) * 1000.0

    @property
    def ttfa_ms(self) -> float | None:
        """Time to first audio: caller stopped speaking → first agent frame sent."""
        start = self.user_speech_end if self.user_speech_end is not None else self.stt_end_of_turn
        if start is None or self.first_frame_sent is None:
            return None
        return (self.first_frame_sent - start) * 1000.0

    def steps_ms(self) -> dict[str, float]:
        """Milliseconds between consecutive recorded timeline points, in time order."""
        points = [(n, getattr(self, n)) for n in TIMELINE_FIELDS if getattr(self, n) is not None]
        points.sort(key=lambda point: point[1])
        return {f"{a}->{b}": (tb - ta) * 1000.0 for (a, ta), (b, tb) in pairwise(points)}


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    """One line of the call transcript. Agent lines hold what the caller heard."""

    role: Literal["user", "agent"]
    text: str
    at: float
    interrupted: bool = False
    # A caller's "uh-huh" while the agent spoke: heard, not a turn (no answer to it).
    backchannel: bool = False


@dataclass(slots=True)
class CallRecord:
    """Everything known about a finished call."""

    call: CallInfo
    started_at: float
    ended_at: float | None = None
    end_reason: str = "unknown"
    transcript: list[TranscriptEntry] = field(default_factory=list)
    turns: list[TurnMetrics] = field(default_factory=list)
    # LLM tokens over the whole call (set when the call ends).
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    # Speculative replies over the whole call: started, promoted (heard), discarded, and
    # the LLM tokens the discarded ones cost (set when the call ends).
    speculations: int = 0
    speculations_promoted: int = 0
    speculations_discarded: int = 0
    discarded_input_tokens: int = 0
    discarded_output_tokens: int = 0
    # The call flow's state at the end (node, variables, path with reasons), with a flow.
    flow: dict[str, Any] | None = None

    def total_usage(self) -> None:
        """Sum the turns' token counts and speculations into the call's (speculations
        dropped when no turn followed, e.g. the caller hung up, are added by the session)."""
        self.input_tokens = sum(t.input_tokens or 0 for t in self.turns)
        self.output_tokens = sum(t.output_tokens or 0 for t in self.turns)
        self.cached_input_tokens = sum(t.cached_input_tokens or 0 for t in self.turns)
        self.speculations = sum(t.speculations for t in self.turns)
        self.speculations_promoted = sum(t.speculation == "promoted" for t in self.turns)
        self.speculations_discarded = self.speculations - self.speculations_promoted
        self.discarded_input_tokens = sum(t.discarded_input_tokens for t in self.turns)
        self.discarded_output_tokens = sum(t.discarded_output_tokens for t in self.turns)
