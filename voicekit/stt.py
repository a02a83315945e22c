"""Speech-to-text interface: one streaming recognition session per call.

Audio goes in with :meth:`STTStream.send_audio` in the format the stream was opened with;
events come out by async iteration. ``EndOfTurn`` is the provider's endpoint ("the caller
stopped"), which is what starts a reply. ``TurnLikelyOver`` is optional and earlier: the
provider believes the turn is over but has not decided; a reply may be written on it,
and is only heard if ``EndOfTurn`` follows with the same words.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import ClassVar, Literal

from voicekit._resource import AsyncResource
from voicekit.audio.formats import AudioFormat
from voicekit.provider import Provider, ProviderKind, SettingsT

__all__ = [
    "STT",
    "EndOfTurn",
    "FinalizeOutcome",
    "STTEvent",
    "STTStream",
    "SpeechStarted",
    "Transcript",
    "TurnLikelyOver",
]


@dataclass(frozen=True, slots=True)
class Transcript:
    """Recognised words. Non-final text may still be revised; final text never is.

    ``start_ms``/``end_ms`` are positions in the stream's audio (not wall-clock time).
    """

    text: str
    is_final: bool
    start_ms: float | None = None
    end_ms: float | None = None
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class EndOfTurn:
    """The caller finished speaking (provider endpoint detection or ``finalize``)."""

    end_ms: float | None = None


@dataclass(frozen=True, slots=True)
class TurnLikelyOver:
    """The caller's turn is probably over: every word so far is final (``text``, the
    turn's words) and the audio since has been quiet, but the provider has not yet
    decided on its endpoint. Emit it at most once per final text; ``EndOfTurn`` still
    follows (or more speech, if the caller goes on)."""

    text: str = ""
    end_ms: float | None = None


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The provider heard the caller begin to speak (voice activity)."""

    start_ms: float | None = None


STTEvent = Transcript | EndOfTurn | SpeechStarted | TurnLikelyOver

# What :meth:`STTStream.finalize` achieved: every pending word is final now ("finalized");
# the provider did not confirm in time ("timed_out"); nothing was asked because the
# connection is down or closing ("not_connected"; a reconnect replays the audio anyway).
FinalizeOutcome = Literal["finalized", "timed_out", "not_connected"]


class STTStream(AsyncResource):
    """One recognition session. Use as ``async with stt.stream(fmt) as stream:``."""

    @abstractmethod
    async def send_audio(self, data: bytes) -> None:
        """Send raw audio in the stream's format. Never blocks on recognition."""

    def send_audio_now(self, data: bytes) -> bool:
        """Send ``data`` at once if that needs no waiting, and say so; False leaves the
        stream exactly as it was, and the caller awaits :meth:`send_audio` instead.

        The session calls this from the media socket's own callback, on the event loop's
        thread, so a caller's frame reaches the STT with no task switch (50 a second per
        call). It must not block. If it raises, the frame counts as sent (it may have
        been written) and the session uses :meth:`send_audio` for the rest of the call.
        The default never can; a provider whose writes are usually immediate implements
        it.
        """
        return False

    @abstractmethod
    async def finalize(self) -> FinalizeOutcome:
        """Ask the provider to make every pending word final now, and say whether it did."""

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[STTEvent]:
        """Events in the order the provider produced them; ends when the stream closes."""

    @abstractmethod
    async def aclose(self) -> None:
        """End the session: flush what the provider holds, then release the connection."""


class STT(Provider[SettingsT], ABC):
    """A speech-to-text provider."""

    kind: ClassVar[ProviderKind] = "stt"

    @property
    @abstractmethod
    def input_formats(self) -> tuple[AudioFormat, ...]:
        """Formats the provider accepts natively, preferred first.

        The session passes the call's audio straight through when it is among these, and
        converts in process to the first one otherwise.
        """

    @abstractmethod
    def stream(self, fmt: AudioFormat, *, call_id: str | None = None) -> STTStream:
        """Open a recognition session for audio in ``fmt`` (one of ``input_formats``)."""
