"""A TTS whose audio is deterministic and as long as the text, with alignment.

Each character becomes ``ms_per_char`` of tone (spaces are quiet), so a test can compute
exactly which characters any stretch of played audio holds. The first audio of an
utterance comes ``first_audio_ms`` after its first text; later chunks are synthesised at
``realtime_factor`` of their duration.
"""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncIterator, Sequence
from typing import ClassVar

import anyio
import numpy as np
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pydantic import Field

from voicekit.audio import PCM_16K, ULAW_8K, AudioConverter, AudioFormat
from voicekit.provider import ProviderSettings
from voicekit.tts import TTS, Alignment, AudioChunk, TTSSession, Utterance

__all__ = ["FakeTTS", "FakeTTSSession", "FakeTTSSettings", "FakeUtterance", "synthesize"]


class FakeTTSSettings(ProviderSettings):
    first_audio_ms: float = Field(default=150.0, ge=0)
    ms_per_char: float = Field(default=60.0, gt=0)
    chunk_ms: float = Field(default=100.0, gt=0, description="Audio per chunk delivered.")
    realtime_factor: float = Field(default=0.1, ge=0, description="Synthesis time / audio.")
    alignment: bool = Field(default=True, description="Send character alignment.")
    fail_on_utterance: int | None = Field(default=None, description="Index that fails.")


@functools.lru_cache(maxsize=256)
def _tone(rate: int, samples: int, amp: int, freq: int) -> np.ndarray:
    """One character's tone (cached: the ElevenLabs emulator speaks for hundreds of calls)."""
    tone = amp * np.sin(2 * math.pi * freq * np.arange(samples) / rate)
    tone.flags.writeable = False
    return tone


def synthesize(text: str, fmt: AudioFormat, ms_per_char: float) -> bytes:
    """The fake's audio for ``text`` in ``fmt``: one tone per character, spaces quiet."""
    rate = fmt.sample_rate
    per_char = round(rate * ms_per_char / 1000)
    parts = []
    for ch in text:
        amp = 300 if ch.isspace() else 6000
        freq = 300 + (ord(ch) % 32) * 25
        parts.append(_tone(rate, per_char, amp, freq))
    pcm = np.concatenate(parts).astype("<i2").tobytes() if parts else b""
    mono = AudioFormat("pcm_s16le", rate)
    if fmt.channels > 1:
        pcm = AudioConverter(mono, AudioFormat("pcm_s16le", rate, fmt.channels)).process(pcm)
        mono = AudioFormat("pcm_s16le", rate, fmt.channels)
    return AudioConverter(mono, fmt).process(pcm)


class FakeUtterance(Utterance):
    """One fake utterance; records the text it was given and how it ended."""

    def __init__(self, session: FakeTTSSession, index: int) -> None:
        self.session = session
        self.index = index
        send, recv = anyio.create_memory_object_stream[str](math.inf)
        self._send: MemoryObjectSendStream[str] = send
        self._recv: MemoryObjectReceiveStream[str] = recv
        self.texts: list[str] = []
        self.flushes = 0
        self.ended = False
        self.cancelled = False
        self.first_text_at: float | None = None
        self.chunks_sent = 0

    @property
    def text(self) -> str:
        return "".join(self.texts)

    async def push_text(self, text: str) -> None:
        if self.cancelled or self.ended or not text:
            return
        if self.first_text_at is None:
            self.first_text_at = anyio.current_time()
        self.texts.append(text)
        self._send.send_nowait(text)

    async def flush(self) -> None:
        self.flushes += 1

    async def end(self) -> None:
        if not self.ended:
            self.ended = True
            self._send.close()

    async def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._send.close()

    async def __aiter__(self) -> AsyncIterator[AudioChunk]:
        s = self.session.tts.settings
        fmt = self.session.format
        chunk_bytes = max(fmt.block_size, fmt.bytes_for_ms(s.chunk_ms))
        char_bytes = fmt.bytes_for_ms(s.ms_per_char)
        if s.fail_on_utterance == self.index:
            from voicekit.errors import ProviderError

            raise ProviderError("scripted TTS failure", provider="fake")
        first = True
        async for text in self._recv:
            if self.cancelled:
                return
            if first:
                assert self.first_text_at is not None
                wait = self.first_text_at + s.first_audio_ms / 1000 - anyio.current_time()
                await anyio.sleep(max(0.0, wait))
            audio = synthesize(text, fmt, s.ms_per_char)
            for start in range(0, len(audio), chunk_bytes):
                if not first:
                    await anyio.sleep(fmt.duration_ms(chunk_bytes) * s.realtime_factor / 1000)
                first = False
                if self.cancelled:
                    return
                data = audio[start : start + chunk_bytes]
                yield AudioChunk(
                    data,
                    self._alignment(text, start, len(data), char_bytes, fmt)
                    if s.alignment
                    else None,
                )
                self.chunks_sent += 1

    @staticmethod
    def _alignment(
        text: str, start: int, size: int, char_bytes: int, fmt: AudioFormat
    ) -> Alignment:
        first_char = -(-start // char_bytes)  # characters that start inside this chunk
        last_char = min(len(text), -(-(start + size) // char_bytes))
        chars, starts, durs = [], [], []
        char_ms = fmt.duration_ms(char_bytes)
        for i in range(first_char, last_char):
            chars.append(text[i])
            starts.append(round(fmt.duration_ms(i * char_bytes - start)))
            durs.append(round(char_ms))
        return Alignment(tuple(chars), tuple(starts), tuple(durs))


class FakeTTSSession(TTSSession):
    def __init__(self, tts: FakeTTS, fmt: AudioFormat) -> None:
        self.tts = tts
        self.format = fmt
        self.utterances: list[FakeUtterance] = []
        self.closed = False

    def utterance(self) -> FakeUtterance:
        utt = FakeUtterance(self, len(self.tts.all_utterances))
        self.utterances.append(utt)
        self.tts.all_utterances.append(utt)
        return utt

    async def aclose(self) -> None:
        self.closed = True
        for utt in self.utterances:
            await utt.cancel()


class FakeTTS(TTS[FakeTTSSettings]):
    """Deterministic speech synthesis; see the module docstring."""

    name: ClassVar[str] = "fake"
    Settings: ClassVar[type[ProviderSettings]] = FakeTTSSettings

    def __init__(
        self,
        settings: FakeTTSSettings | None = None,
        *,
        formats: Sequence[AudioFormat] = (ULAW_8K, PCM_16K),
    ) -> None:
        super().__init__(settings)
        self._formats = tuple(formats)
        self.sessions: list[FakeTTSSession] = []
        self.all_utterances: list[FakeUtterance] = []

    @classmethod
    def with_options(cls, **options: object) -> FakeTTS:
        formats = options.pop("formats", (ULAW_8K, PCM_16K))
        return cls(FakeTTSSettings.model_validate(options), formats=formats)  # type: ignore[arg-type]

    @property
    def output_formats(self) -> tuple[AudioFormat, ...]:
        return self._formats

    def session(self, fmt: AudioFormat, *, call_id: str | None = None) -> FakeTTSSession:
        session = FakeTTSSession(self, fmt)
        self.sessions.append(session)
        return session
