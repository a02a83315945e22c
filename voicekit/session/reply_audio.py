"""A reply's audio, in order, from live TTS utterances and cached phrases.

Most replies are one live utterance. A phrase known before the call is its own source:
played from the phrase cache when it is there, otherwise synthesised in an utterance of
its own whose audio then fills the cache (audio of a phrase can only be cached when
nothing else shares its utterance). The pump reads the sources one after another, so a
reply that mixes a cached greeting with an LLM answer still plays in the order written.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from voicekit.phrases import VoicePhrases
from voicekit.tts import AudioChunk, TTSSession, Utterance

__all__ = ["ReplyAudio"]


@dataclass(slots=True)
class _Source:
    """Cached chunks, or a live utterance (whose audio fills the cache under ``fill``)."""

    chunks: tuple[AudioChunk, ...] = ()
    utterance: Utterance | None = None
    fill: str | None = None


class ReplyAudio:
    """The ordered audio sources of one reply."""

    def __init__(self, session: TTSSession, phrases: VoicePhrases | None = None) -> None:
        self._session = session
        self.phrases = phrases
        send, recv = anyio.create_memory_object_stream[_Source](math.inf)
        self._send: MemoryObjectSendStream[_Source] = send
        self._recv: MemoryObjectReceiveStream[_Source] = recv
        self._live: Utterance | None = None
        self._open: list[Utterance] = []  # utterances whose audio may not all be out yet

    def live(self) -> Utterance:
        """The utterance that takes the reply's next text (opened on first use)."""
        if self._live is None:
            self._live = self._open_utterance(None)
        return self._live

    async def cached(self, chunks: tuple[AudioChunk, ...]) -> None:
        """Play ``chunks`` next."""
        await self._close_live()
        self._send.send_nowait(_Source(chunks=chunks))

    async def filling(self, text: str) -> Utterance:
        """A fresh utterance for ``text`` alone, whose audio then fills the cache."""
        await self._close_live()
        return self._open_utterance(text)

    async def end(self) -> None:
        """No more sources: the last live utterance gets all its text."""
        await self._close_live()
        self._send.close()

    async def cancel(self) -> None:
        """Abandon every utterance that may still be producing audio (barge-in)."""
        self._send.close()
        for utterance in self._open:
            await utterance.cancel()
        self._open.clear()

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        """The reply's audio, source after source."""
        async with self._recv:
            async for source in self._recv:
                if source.utterance is None:
                    for chunk in source.chunks:
                        yield chunk
                    continue
                kept: list[AudioChunk] = []
                async for chunk in source.utterance:
                    if source.fill is not None:
                        kept.append(chunk)
                    yield chunk
                self._open.remove(source.utterance)
                if source.fill is not None and self.phrases is not None:
                    self.phrases.put(source.fill, tuple(kept))  # kept only if complete

    def _open_utterance(self, fill: str | None) -> Utterance:
        utterance = self._session.utterance()
        self._open.append(utterance)
        self._send.send_nowait(_Source(utterance=utterance, fill=fill))
        return utterance

    async def _close_live(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            await live.flush()
            await live.end()
