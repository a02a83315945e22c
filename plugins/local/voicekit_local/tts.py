"""The ``local`` TTS provider: piper, offline, streamed piece by piece.

Each flushed piece of text is synthesised in a worker thread as soon as the audio
iteration reaches it and comes out as one chunk with its character timings, while the
next piece is already waiting. Output is the voice's own rate (22.05 kHz for the default
voice); format negotiation converts it to the call's codec in process.
"""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from voicekit.audio import AudioFormat
from voicekit.errors import AudioFormatError, ConfigError
from voicekit.provider import ProviderSettings
from voicekit.tts import TTS, AudioChunk, TTSSession, Utterance
from voicekit_local.piper_engine import (
    PiperEngine,
    default_voice_model,
    load_engine,
    sentences,
    voice_sample_rate,
)
from voicekit_local.settings import LocalTTSSettings
from voicekit_local.workers import run_cpu

__all__ = ["LocalTTS", "LocalTTSSession", "LocalUtterance"]


class LocalUtterance(Utterance):
    def __init__(self, session: LocalTTSSession) -> None:
        self._session = session
        send, recv = anyio.create_memory_object_stream[str](math.inf)
        self._send: MemoryObjectSendStream[str] = send
        self._recv: MemoryObjectReceiveStream[str] = recv
        self._pending = ""
        self.cancelled = False

    async def push_text(self, text: str) -> None:
        if not self.cancelled:
            self._pending += text

    async def flush(self) -> None:
        if self._pending.strip() and not self.cancelled:
            self._send.send_nowait(self._pending)
        self._pending = ""

    async def end(self) -> None:
        await self.flush()
        self._send.close()

    async def cancel(self) -> None:
        self.cancelled = True
        self._pending = ""
        self._send.close()

    async def __aiter__(self) -> AsyncIterator[AudioChunk]:
        settings = self._session.settings
        async with self._recv:
            async for piece in self._recv:
                # Sentence by sentence: a long piece's first sentence plays while the
                # next is made, and a cancel waits for one sentence at most.
                for text in sentences(piece):
                    if self.cancelled:
                        return
                    engine = await self._session.engine()
                    synthesize = functools.partial(
                        engine.synthesize,
                        text,
                        length_scale=settings.length_scale,
                        volume=settings.volume,
                        variation=settings.variation,
                    )
                    result = await run_cpu(synthesize)
                    if self.cancelled:
                        return
                    if result.pcm:
                        yield AudioChunk(result.pcm, result.alignment)


class LocalTTSSession(TTSSession):
    def __init__(self, tts: LocalTTS) -> None:
        self.settings = tts.settings
        self._model = tts.settings.voice_model
        self._utterances: list[LocalUtterance] = []

    async def engine(self) -> PiperEngine:
        return await run_cpu(load_engine, self._model)

    def utterance(self) -> LocalUtterance:
        self._utterances = [u for u in self._utterances if not u.cancelled]
        utterance = LocalUtterance(self)
        self._utterances.append(utterance)
        return utterance

    async def aclose(self) -> None:
        for utterance in self._utterances:
            await utterance.cancel()
        self._utterances.clear()


class LocalTTS(TTS[LocalTTSSettings]):
    """Piper neural TTS on this machine: no network, no key."""

    name: ClassVar[str] = "local"
    Settings: ClassVar[type[ProviderSettings]] = LocalTTSSettings

    @property
    def model_path(self) -> Path:
        return self.settings.voice_model or default_voice_model()

    @property
    def output_formats(self) -> tuple[AudioFormat, ...]:
        return (AudioFormat("pcm_s16le", voice_sample_rate(self.model_path)),)

    def session(self, fmt: AudioFormat, *, call_id: str | None = None) -> LocalTTSSession:
        if fmt not in self.output_formats:
            raise AudioFormatError(
                f"the local TTS speaks {self.output_formats[0]}, not {fmt}: "
                "format negotiation converts it to the call's codec"
            )
        return LocalTTSSession(self)

    def voice_identity(self) -> dict[str, Any]:
        return {
            "voice": self.model_path.name,
            "length_scale": self.settings.length_scale,
            "volume": self.settings.volume,
            "variation": self.settings.variation,
        }

    async def prepare(self) -> None:
        """Load the voice now (about a second), so the first call does not wait for it;
        a voice that does not load is a configuration error (the server does not start)."""
        try:
            await run_cpu(load_engine, self.settings.voice_model)
        except Exception as exc:
            raise ConfigError(
                f"[providers.local.tts] voice_model: cannot load the piper voice "
                f"{self.model_path}: {type(exc).__name__}: {exc}"
            ) from None
