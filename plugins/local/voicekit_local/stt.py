"""The ``local`` STT provider: pocketsphinx, offline, streaming at 16 kHz.

Audio is cut into 30 ms frames, each classified by pocketsphinx's voice-activity
detector, which decides where the caller's speech starts and stops; speech (with 300 ms
of lead-in) goes to the decoder. Each batch of frames is one worker-thread job (at most
a fifth of a second of audio, so no job holds the interpreter long), and the stream
reports, in order:
``SpeechStarted``; non-final ``Transcript``s as the hypothesis changes (at most every
``partial_interval_ms``); at the endpoint the final ``Transcript`` and ``EndOfTurn``.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from voicekit.audio import PCM_16K, AudioFormat
from voicekit.background import BackgroundTasks
from voicekit.errors import AudioFormatError
from voicekit.provider import ProviderSettings
from voicekit.stt import (
    STT,
    EndOfTurn,
    FinalizeOutcome,
    SpeechStarted,
    STTEvent,
    STTStream,
    Transcript,
)
from voicekit_local import decoders
from voicekit_local.settings import LocalSTTSettings
from voicekit_local.workers import run_cpu

__all__ = ["LocalSTT", "LocalSTTStream"]

logger = logging.getLogger(__name__)

MAX_BATCH_MS = 200  # audio per worker-thread job
MAX_BEHIND_S = 10  # audio waiting for recognition beyond this is dropped, oldest first


FRAME_MS = 30  # the voice-activity detector's frame
START_WINDOW = 5  # frames looked at to decide speech has started...
START_FRAMES = 3  # ...of which this many must be speech (90 to 150 ms of voice)
LEAD_IN_FRAMES = 10  # audio before the start handed to the decoder too (300 ms)


@dataclass
class _Recognizer:
    """The decoding state of one stream; every method runs in a worker thread.

    Endpointing is done here, on pocketsphinx's per-frame voice-activity decisions:
    speech starts when 3 of the last 5 frames are voiced (barge-in needs to know within
    about a tenth of a second), and the turn ends after ``end_silence_s`` without voice.
    """

    end_silence_s: float
    vad_mode: int
    partial_interval_ms: int
    max_utterance_s: float = 60.0
    started_ms: float = 0.0
    decoder: Any = None
    vad: Any = None
    in_utterance: bool = False
    position_ms: float = 0.0  # audio classified so far
    last_voice_ms: float = 0.0  # end of the latest voiced frame
    last_partial: str = ""
    last_partial_ms: float = -1e9
    recent: deque[tuple[bytes, bool]] = field(default_factory=lambda: deque(maxlen=LEAD_IN_FRAMES))
    buffer: bytearray = field(default_factory=bytearray)

    def open(self, max_streams: int) -> None:
        from pocketsphinx import Vad

        self.decoder = decoders.acquire(max_streams)
        self.vad = Vad(self.vad_mode, 16000, FRAME_MS / 1000)

    def feed(self, audio: bytes) -> list[STTEvent]:
        events: list[STTEvent] = []
        self.buffer += audio
        size = self.vad.frame_bytes
        while len(self.buffer) >= size:
            frame = bytes(self.buffer[:size])
            del self.buffer[:size]
            voiced = bool(self.vad.is_speech(frame))
            self.position_ms += FRAME_MS
            if voiced:
                self.last_voice_ms = self.position_ms
            if self.in_utterance:
                self.decoder.process_raw(frame)
                silent_ms = self.position_ms - self.last_voice_ms
                too_long = self.position_ms - self.started_ms >= self.max_utterance_s * 1000
                if silent_ms >= self.end_silence_s * 1000 or too_long:
                    self._end(events)
                else:
                    self._partial(events)
                continue
            self.recent.append((frame, voiced))
            window = list(self.recent)[-START_WINDOW:]
            if sum(v for _, v in window) >= START_FRAMES:
                self._start(events, window)
        return events

    def finish(self) -> list[STTEvent]:
        """End the utterance in progress now (``finalize``, or the stream closing)."""
        events: list[STTEvent] = []
        if self.in_utterance:
            self._end(events)
        return events

    def close(self) -> None:
        if self.decoder is not None:
            if self.in_utterance:
                self.decoder.end_utt()
                self.in_utterance = False
            decoders.release(self.decoder)
            self.decoder = None

    def _start(self, events: list[STTEvent], window: list[tuple[bytes, bool]]) -> None:
        first_voiced = next(i for i, (_, v) in enumerate(window) if v)
        start_ms = self.position_ms - (len(window) - first_voiced) * FRAME_MS
        self.decoder.start_utt()
        self.started_ms = start_ms
        for frame, _ in self.recent:
            self.decoder.process_raw(frame)
        self.recent.clear()
        self.in_utterance = True
        self.last_partial, self.last_partial_ms = "", self.position_ms
        events.append(SpeechStarted(start_ms=start_ms))

    def _partial(self, events: list[STTEvent]) -> None:
        if self.position_ms - self.last_partial_ms < self.partial_interval_ms:
            return
        self.last_partial_ms = self.position_ms
        text = self.decoder.hyp()
        if text and text != self.last_partial:
            self.last_partial = text
            events.append(Transcript(text, is_final=False))

    def _end(self, events: list[STTEvent]) -> None:
        self.decoder.end_utt()
        self.in_utterance = False
        text = self.decoder.hyp()
        if text:
            events.append(Transcript(text, is_final=True, end_ms=self.last_voice_ms))
        events.append(EndOfTurn(end_ms=self.last_voice_ms))


class LocalSTTStream(STTStream):
    def __init__(self, settings: LocalSTTSettings, call_id: str | None) -> None:
        self._call_id = call_id
        self._max_streams = settings.max_streams
        self._recognizer = _Recognizer(
            settings.end_silence_ms / 1000,
            settings.vad_mode,
            settings.partial_interval_ms,
            max_utterance_s=settings.max_utterance_s,
        )
        send, recv = anyio.create_memory_object_stream[STTEvent](math.inf)
        self._events_in: MemoryObjectSendStream[STTEvent] = send
        self._events_out: MemoryObjectReceiveStream[STTEvent] = recv
        self._audio = bytearray()
        self._audio_ready = anyio.Event()
        self._closing = False
        self._tasks: BackgroundTasks | None = None
        self._busy = anyio.Lock()  # one recognizer job at a time, in order
        self._batch_bytes = PCM_16K.bytes_for_ms(MAX_BATCH_MS)
        self._max_buffered = PCM_16K.bytes_for_ms(MAX_BEHIND_S * 1000)
        self._dropped_ms = 0.0

    async def __aenter__(self) -> LocalSTTStream:
        await run_cpu(self._recognizer.open, self._max_streams, engine="stt")
        self._tasks = await self.own(BackgroundTasks(f"local stt {self._call_id}")).__aenter__()
        self._tasks.start(self._decode_loop)
        return self

    async def send_audio(self, data: bytes) -> None:
        if self._closing:
            return
        self._audio += data  # a sample split across two sends is joined in the buffer
        excess = len(self._audio) - self._max_buffered
        if excess > 0:  # recognition fell far behind (an overloaded machine): catch up
            excess += excess % 2
            del self._audio[:excess]
            first = self._dropped_ms == 0
            self._dropped_ms += PCM_16K.duration_ms(excess)
            if first:
                logger.warning(
                    "call=%s: local STT is %d s behind; dropping the oldest audio",
                    self._call_id,
                    MAX_BEHIND_S,
                )
        self._audio_ready.set()

    async def _decode_loop(self) -> None:
        while True:
            await self._audio_ready.wait()
            self._audio_ready = anyio.Event()
            while self._audio:
                async with self._busy:  # the batch is taken under the lock: finalize
                    batch = bytes(self._audio[: self._batch_bytes])  # sees it or not at all
                    del self._audio[: self._batch_bytes]
                    events = await run_cpu(self._recognizer.feed, batch, engine="stt")
                for event in events:
                    self._events_in.send_nowait(event)

    async def finalize(self) -> FinalizeOutcome:
        if self._closing:
            return "not_connected"
        async with self._busy:
            pending, self._audio = bytes(self._audio), bytearray()
            events = await run_cpu(self._feed_then_finish, pending, engine="stt")
        for event in events:
            self._events_in.send_nowait(event)
        return "finalized"

    def _feed_then_finish(self, pending: bytes) -> list[STTEvent]:
        return self._recognizer.feed(pending) + self._recognizer.finish()

    async def __aiter__(self) -> AsyncIterator[STTEvent]:
        async for event in self._events_out:
            yield event

    async def aclose(self) -> None:
        if self._closing:
            return
        self._closing = True
        await self.stop_owned_tasks()
        with anyio.CancelScope(shield=True):
            async with self._busy:
                events = await run_cpu(self._recognizer.finish, engine="stt")
                await run_cpu(self._recognizer.close, engine="stt")
        for event in events:
            self._events_in.send_nowait(event)
        self._events_in.close()


class LocalSTT(STT[LocalSTTSettings]):
    """pocketsphinx speech recognition on this machine (US English): no network, no key."""

    name: ClassVar[str] = "local"
    Settings: ClassVar[type[ProviderSettings]] = LocalSTTSettings

    @property
    def input_formats(self) -> tuple[AudioFormat, ...]:
        return (PCM_16K,)

    def stream(self, fmt: AudioFormat, *, call_id: str | None = None) -> LocalSTTStream:
        if fmt != PCM_16K:
            raise AudioFormatError(f"the local STT takes {PCM_16K}, not {fmt}")
        return LocalSTTStream(self.settings, call_id)

    async def prepare(self) -> None:
        """Load a decoder now, so the first call does not wait a quarter second for it."""
        decoder = await run_cpu(decoders.acquire, self.settings.max_streams, engine="stt")
        decoders.release(decoder)
