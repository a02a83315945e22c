"""A scripted STT that "hears" speech from the energy of the audio it receives.

Each burst of non-silent caller audio is taken to be the next scripted utterance: words
appear as partial transcripts while the burst goes on, and a final transcript plus
``EndOfTurn`` follow once ``endpoint_ms`` of silence has been received. With
``likely_over_ms``, the words so far become final with a ``TurnLikelyOver`` after that much
silence; speech that resumes before ``endpoint_ms`` goes on with the same utterance.
Everything is tied to the audio position, so timing follows the caller's audio exactly,
whatever the clock.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from typing import ClassVar

import anyio
import numpy as np
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pydantic import Field

from voicekit.audio import PCM_16K, ULAW_8K, AudioConverter, AudioFormat
from voicekit.provider import ProviderSettings
from voicekit.stt import (
    STT,
    EndOfTurn,
    FinalizeOutcome,
    SpeechStarted,
    STTEvent,
    STTStream,
    Transcript,
    TurnLikelyOver,
)

__all__ = ["FakeSTT", "FakeSTTSettings", "FakeSTTStream"]


class FakeSTTSettings(ProviderSettings):
    utterances: list[str] = Field(default_factory=list, description="What the caller says.")
    endpoint_ms: float = Field(default=300.0, ge=0, description="Silence before end of turn.")
    likely_over_ms: float | None = Field(
        default=None, ge=0, description="Silence before TurnLikelyOver (None: never sent)."
    )
    word_ms: float = Field(default=200.0, gt=0, description="Speech per revealed word.")
    energy_threshold: float = Field(default=300.0, ge=0, description="RMS of speech (PCM).")


class FakeSTTStream(STTStream):
    """One recognition session of :class:`FakeSTT`."""

    def __init__(self, stt: FakeSTT, fmt: AudioFormat) -> None:
        self.stt = stt
        self.format = fmt
        self._to_pcm = AudioConverter(fmt, AudioFormat("pcm_s16le", fmt.sample_rate))
        send, recv = anyio.create_memory_object_stream[STTEvent](math.inf)
        self._send: MemoryObjectSendStream[STTEvent] = send
        self._recv: MemoryObjectReceiveStream[STTEvent] = recv
        self.audio_ms = 0.0
        self.bytes_received = 0
        self.chunks_received = 0
        self.closed = False
        self._speech_start: float | None = None
        self._speech_end = 0.0
        self._speech_ms = 0.0
        self._revealed = 0
        self._finalized = 0  # words already sent as final in this utterance
        self._likely_over_sent = False

    def emit(self, event: STTEvent) -> None:
        """Inject an event directly (for tests that script the STT by hand)."""
        if not self.closed:
            self._send.send_nowait(event)

    def _current_words(self) -> list[str]:
        script = self.stt.settings.utterances
        n = self.stt.next_utterance
        return (script[n] if n < len(script) else "").split()

    async def send_audio(self, data: bytes) -> None:
        if self.closed:
            return
        self.bytes_received += len(data)
        self.chunks_received += 1
        pcm = self._to_pcm.process(data)
        samples = np.frombuffer(pcm, "<i2").astype(np.float64)
        rms = float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0
        dur = self.format.duration_ms(len(data))
        start = self.audio_ms
        self.audio_ms += dur
        s = self.stt.settings
        if rms >= s.energy_threshold:
            if self._speech_start is None:
                self._speech_start = start
                self._speech_ms = 0.0
                self._revealed = self._finalized = 0
                self.emit(SpeechStarted(start_ms=start))
            self._likely_over_sent = False
            self._speech_ms += dur
            self._speech_end = self.audio_ms
            words = self._current_words()
            shown = min(len(words), 1 + int(self._speech_ms // s.word_ms))
            if words and shown > self._revealed:
                self._revealed = shown
                self.emit(
                    Transcript(
                        " ".join(words[self._finalized : shown]),
                        is_final=False,
                        start_ms=self._speech_start,
                        end_ms=self.audio_ms,
                    )
                )
        elif self._speech_start is not None:
            quiet = self.audio_ms - self._speech_end
            if quiet >= s.endpoint_ms:
                self._end_turn()
            elif s.likely_over_ms is not None and quiet >= s.likely_over_ms:
                self._likely_over()

    def _likely_over(self) -> None:
        if self._likely_over_sent or self._revealed == 0:
            return
        self._likely_over_sent = True
        words = self._current_words()
        if self._revealed > self._finalized:
            self.emit(
                Transcript(
                    " ".join(words[self._finalized : self._revealed]),
                    is_final=True,
                    start_ms=self._speech_start,
                    end_ms=self._speech_end,
                    confidence=0.99,
                )
            )
            self._finalized = self._revealed
        self.emit(TurnLikelyOver(" ".join(words[: self._revealed]), end_ms=self._speech_end))

    def _end_turn(self) -> None:
        assert self._speech_start is not None
        text = " ".join(self._current_words()[self._finalized :])
        self.stt.next_utterance += 1
        if text:
            self.emit(
                Transcript(
                    text,
                    is_final=True,
                    start_ms=self._speech_start,
                    end_ms=self._speech_end,
                    confidence=0.99,
                )
            )
        self.emit(EndOfTurn(end_ms=self._speech_end))
        self._speech_start = None

    async def finalize(self) -> FinalizeOutcome:
        if self.closed:
            return "not_connected"
        if self._speech_start is not None:
            self._end_turn()
        return "finalized"

    async def __aiter__(self) -> AsyncIterator[STTEvent]:
        async for event in self._recv:
            yield event

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self._send.close()


class FakeSTT(STT[FakeSTTSettings]):
    """Scripted speech recognition; see the module docstring."""

    name: ClassVar[str] = "fake"
    Settings: ClassVar[type[ProviderSettings]] = FakeSTTSettings

    def __init__(
        self,
        settings: FakeSTTSettings | None = None,
        *,
        formats: Sequence[AudioFormat] = (ULAW_8K, PCM_16K),
    ) -> None:
        super().__init__(settings)
        self._formats = tuple(formats)
        self.next_utterance = 0
        self.streams: list[FakeSTTStream] = []

    @classmethod
    def scripted(cls, utterances: Sequence[str], **options: object) -> FakeSTT:
        formats = options.pop("formats", (ULAW_8K, PCM_16K))
        settings = FakeSTTSettings.model_validate({"utterances": list(utterances), **options})
        return cls(settings, formats=formats)  # type: ignore[arg-type]

    @property
    def input_formats(self) -> tuple[AudioFormat, ...]:
        return self._formats

    def stream(self, fmt: AudioFormat, *, call_id: str | None = None) -> FakeSTTStream:
        stream = FakeSTTStream(self, fmt)
        self.streams.append(stream)
        return stream
