"""The sections of ``voicekit.toml``, one pydantic model each.

Field descriptions are the documentation: ``docs/configuration.md`` lists the same
fields, and a test keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = [
    "AgentSettings",
    "FlowSettings",
    "ProviderChoice",
    "ServerSettings",
    "TurnSettings",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentSettings(_Section):
    """What the agent says and how the model is asked."""

    instructions: str = Field(
        default="You are a helpful, concise phone assistant. Answer in one or two short "
        "sentences of plain speech: no lists, no markdown.",
        description="System instructions for the LLM.",
    )
    greeting: str | None = Field(
        default="Hello! How can I help you today?",
        description="What the agent says first when first_speaker is 'agent'.",
    )
    first_speaker: Literal["agent", "caller"] = Field(
        default="agent", description="Who speaks first: 'agent' (greeting) or 'caller'."
    )
    history_turns: int = Field(
        default=20, ge=1, le=1000, description="How many past turns the LLM sees."
    )
    max_tokens: int | None = Field(
        default=300, ge=1, description="Upper bound on tokens per reply (none: provider's)."
    )
    temperature: float | None = Field(
        default=None, ge=0.0, le=2.0, description="Sampling temperature (none: provider's)."
    )
    knowledge: str | None = Field(
        default=None, description="Reference text appended to the instructions."
    )
    knowledge_file: Path | None = Field(
        default=None, description="A UTF-8 text file appended to the instructions."
    )
    apology: str = Field(
        default="Sorry, I had a problem just now. Could you say that again?",
        description="Spoken when the LLM or TTS fails during a turn.",
    )
    farewell: str = Field(
        default="Thank you for calling. Goodbye!",
        description="Spoken before the agent hangs up.",
    )
    builtin_tools: list[Literal["end_call", "transfer_call"]] = Field(
        default_factory=list,
        description="Built-in tools offered to the model: end_call (hang up after the "
        "goodbye has played), transfer_call (to a number of transfer_allowlist).",
    )
    transfer_allowlist: list[str] = Field(
        default_factory=list,
        description="Numbers (E.164) and SIP URIs the agent may transfer calls to; no "
        "other destination is ever dialled.",
    )
    tool_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Longest a tool may run before it fails."
    )
    filler: str = Field(
        default="One moment, please.",
        description="Spoken once per turn when a tool is slow (empty: never).",
    )
    filler_after_s: float = Field(
        default=1.5, ge=0, description="How long a tool may run before the filler is spoken."
    )
    dtmf_gap_s: float = Field(
        default=1.0,
        gt=0,
        le=10,
        description="Keys the caller presses within this gap of each other (or up to '#') "
        "reach the model as one message.",
    )


class ProviderChoice(_Section):
    """Which provider serves this role; its options live in ``[providers.<name>]``."""

    provider: str = Field(description="Registered provider name (see `voicekit plugins`).")


class TurnSettings(_Section):
    """Turn-taking, barge-in, silence and call-length rules."""

    min_interruption_words: int = Field(
        default=2, ge=1, description="Words the caller must say over the agent to barge in."
    )
    echo_filter: bool = Field(
        default=True,
        description="Ignore caller partials that repeat the agent's own recent words.",
    )
    backchannels: list[str] = Field(
        default_factory=lambda: [
            "yeah",
            "yep",
            "uh-huh",
            "uhhuh",
            "mm-hmm",
            "mm-hm",
            "mmhmm",
            "mhm",
            "mhmm",
            "okay",
            "ok",
            "right",
            "sure",
            "alright",
            "i see",
            "got it",
        ],
        description="Words and phrases that, said only by themselves while the agent "
        "speaks, are listening, not a turn: they neither interrupt nor get an answer "
        "(empty: off). Hyphens and spaces match each other.",
    )
    resume_after_false_barge_in: bool = Field(
        default=True,
        description="When a barge-in turns out to be noise or only a backchannel, go on "
        "from the first word the caller did not hear.",
    )
    speculative: bool = Field(
        default=True,
        description="Start the reply when the caller's turn is probably over (the STT's "
        "likely-over signal, or a final transcript and then quiet), with its audio held "
        "until the end of turn confirms the words; discarded unheard otherwise. Costs "
        "LLM tokens on discarded guesses; see docs/latency.md.",
    )
    speculation_quiet_ms: int = Field(
        default=150,
        ge=20,
        le=2000,
        description="For an STT with no likely-over signal of its own: how long after a "
        "final transcript, with no new words, the turn counts as probably over.",
    )
    max_speculations: int = Field(
        default=2,
        ge=1,
        le=10,
        description="Speculative replies started at most per caller turn.",
    )
    playout_lead_ms: int = Field(
        default=120, ge=20, le=2000, description="Audio sent ahead of real-time playback."
    )
    playout_message_ms: int = Field(
        default=60,
        ge=20,
        le=1000,
        description="Most audio sent in one media message (fewer messages, less CPU).",
    )
    first_clause_min_chars: int = Field(
        default=10, ge=1, description="Shortest first clause spoken before its sentence ends."
    )
    max_segment_chars: int = Field(
        default=220, ge=20, description="A longer sentence is cut at a clause or a space."
    )
    idle_timeout_s: float = Field(
        default=8.0, gt=0, description="Silence after the agent's turn before an idle prompt."
    )
    idle_prompts: list[str] = Field(
        default_factory=lambda: ["Are you still there?"],
        description="Prompts spoken in turn on silence; after the last, the agent hangs up.",
    )
    max_call_seconds: float = Field(
        default=1800.0, gt=0, description="The agent says farewell and hangs up after this."
    )
    voicemail_phrases: list[str] = Field(
        default_factory=lambda: [
            "leave a message",
            "after the tone",
            "after the beep",
            "not available",
            "voicemail",
            "press one",
            "press 1",
        ],
        description="Phrases in the first caller turn that mean a machine answered.",
    )
    voicemail_action: Literal["hangup", "leave_message", "ignore"] = Field(
        default="hangup", description="What to do when a machine answers."
    )
    voicemail_message: str | None = Field(
        default=None, description="Left after the beep when voicemail_action='leave_message'."
    )


EventLoop = Literal["auto", "uvloop", "asyncio"]


class ServerSettings(_Section):
    """The HTTP/WebSocket server that telephony providers call."""

    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port.")
    public_url: str | None = Field(
        default=None,
        description="Public URL of this server (https://host[:port][/prefix]), used in "
        "webhook and media-stream URLs; required to answer calls, never taken from requests.",
    )
    media_auth_secret: SecretStr | None = Field(
        default=None,
        description="Secret signing the media-stream tokens (random per process if unset).",
    )
    media_token_ttl_s: int = Field(
        default=300, ge=10, description="How long a media-stream token stays valid."
    )
    shutdown_grace_s: float = Field(
        default=30.0, ge=0, description="On SIGTERM, how long active calls may finish."
    )
    max_calls: int = Field(
        default=500,
        ge=1,
        description="Concurrent calls, counted from the moment a call is answered or dialled; "
        "beyond it calls are rejected as busy.",
    )
    max_body_bytes: int = Field(
        default=65_536,
        ge=1024,
        le=64 * 1_048_576,
        description="Largest HTTP request body (webhooks); larger ones get 413 while reading.",
    )
    max_message_bytes: int = Field(
        default=65_536,
        ge=1024,
        le=16 * 1_048_576,
        description="Largest media WebSocket message; a larger one closes the socket (1009).",
    )
    request_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Time a client has to send each HTTP request's headers and body.",
    )
    keep_alive_timeout_s: float = Field(
        default=5.0, gt=0, le=300, description="Idle keep-alive connections close after this."
    )
    records_dir: Path | None = Field(
        default=None, description="Write each finished call's record here as JSON."
    )
    phrase_cache_mb: int = Field(
        default=64,
        ge=0,
        le=4096,
        description="Memory for the phrase cache (known text played from stored audio), "
        "shared by all calls; 0 turns the cache off.",
    )
    phrase_cache_dir: Path | None = Field(
        default=None,
        description="Also keep cached phrases in this directory, so they survive restarts; "
        "`voicekit flow warm` fills it ahead of time.",
    )
    event_loop: EventLoop = Field(
        default="auto",
        description="Event loop for `voicekit serve`: auto uses uvloop when installed.",
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_public_url(value)


def _check_public_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if (
        parts.scheme not in ("http", "https")
        or not host
        or any(ch.isspace() or ch in '<>"{}|\\^`' for ch in host)
    ):
        raise ValueError(
            "public_url must be an absolute http(s) URL such as https://voice.example.com"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("public_url must not carry a query, a fragment or credentials")
    return url.rstrip("/")


class FlowSettings(_Section):
    """An optional call flow; with neither field set the agent converses freely."""

    file: Path | None = Field(default=None, description="Path of a flow file (TOML or JSON).")
    inline: dict[str, Any] | None = Field(default=None, description="The flow, inline.")

    @model_validator(mode="after")
    def _one_source(self) -> FlowSettings:
        if self.file is not None and self.inline is not None:
            raise ValueError("set either flow.file or flow.inline, not both")
        return self
