"""The phrase cache: audio and alignment of known text, kept in memory and on disk.

Known text (a greeting, a flow's scripts and reprompts, the apology, farewells, fillers)
is synthesised once per voice and then played with no TTS round-trip. The memory tier is
a byte-bounded LRU shared by every call of the process; the optional disk tier survives
restarts and is filled ahead of time by ``voicekit flow warm``. A miss is never an
error: the reply synthesises live and the result fills the cache.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread

from voicekit.audio import AudioFormat
from voicekit.config.settings import VoiceKitSettings
from voicekit.phrases.key import PhraseKey
from voicekit.phrases.store import PhraseStore
from voicekit.tts import AudioChunk

__all__ = ["CacheStats", "PhraseCache", "VoicePhrases", "covers", "phrase_cache"]

logger = logging.getLogger(__name__)

DEFAULT_MEMORY_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    stored: int = 0


def covers(text: str, chunks: Sequence[AudioChunk]) -> bool:
    """Whether ``chunks`` speak all of ``text`` (the test before caching them): with
    alignment its characters must spell the text, so an utterance cut short (a closing
    session, a provider that stopped early) is never cached as the whole phrase."""
    if not chunks or not any(c.data for c in chunks):
        return False
    if any(c.alignment is None for c in chunks):
        return True
    aligned = "".join(ch for c in chunks if c.alignment for ch in c.alignment.chars)
    return "".join(aligned.split()) == "".join(text.split())


class PhraseCache:
    """Phrases by key: memory first, then ``directory`` (None: memory only)."""

    def __init__(
        self, directory: Path | None = None, *, memory_bytes: int = DEFAULT_MEMORY_BYTES
    ) -> None:
        self.store = PhraseStore(directory) if directory is not None else None
        self.memory_bytes = memory_bytes
        self.stats = CacheStats()
        self._memory: OrderedDict[PhraseKey, tuple[AudioChunk, ...]] = OrderedDict()
        self._held = 0

    @property
    def directory(self) -> Path | None:
        return self.store.directory if self.store is not None else None

    def cached(self, key: PhraseKey) -> tuple[AudioChunk, ...] | None:
        """The phrase if it is in memory (no I/O)."""
        chunks = self._memory.get(key)
        if chunks is not None:
            self._memory.move_to_end(key)
        return chunks

    async def get(self, key: PhraseKey) -> tuple[AudioChunk, ...] | None:
        """The phrase from memory or disk; None on a miss."""
        chunks = self.cached(key)
        if chunks is not None:
            self.stats.hits += 1
            return chunks
        if self.store is not None:
            chunks = await anyio.to_thread.run_sync(self.store.load, key)
            if chunks is not None:
                self.stats.disk_hits += 1
                self._remember(key, chunks)
                return chunks
        self.stats.misses += 1
        return None

    async def put(self, key: PhraseKey, chunks: tuple[AudioChunk, ...]) -> None:
        """Keep ``chunks`` as the audio of ``key``, in memory and on disk."""
        if not chunks or not any(c.data for c in chunks):
            return
        self._remember(key, chunks)
        self.stats.stored += 1
        if self.store is not None:
            await anyio.to_thread.run_sync(self.store.save, key, chunks)

    def _remember(self, key: PhraseKey, chunks: tuple[AudioChunk, ...]) -> None:
        size = sum(len(c.data) for c in chunks)
        if size > self.memory_bytes:
            return
        old = self._memory.pop(key, None)
        if old is not None:
            self._held -= sum(len(c.data) for c in old)
        self._memory[key] = chunks
        self._held += size
        while self._held > self.memory_bytes:
            _, evicted = self._memory.popitem(last=False)
            self._held -= sum(len(c.data) for c in evicted)


class VoicePhrases:
    """The cache seen by one TTS voice in one audio format (what a call needs)."""

    def __init__(
        self,
        cache: PhraseCache,
        *,
        provider: str,
        voice: Mapping[str, Any],
        fmt: AudioFormat,
    ) -> None:
        self.cache = cache
        self.provider = provider
        self.voice = dict(voice)
        self.fmt = fmt

    def key(self, text: str) -> PhraseKey:
        return PhraseKey.of(self.provider, self.voice, self.fmt, text)

    async def get(self, text: str) -> tuple[AudioChunk, ...] | None:
        return await self.cache.get(self.key(text))

    async def put(self, text: str, chunks: tuple[AudioChunk, ...]) -> None:
        await self.cache.put(self.key(text), chunks)


def phrase_cache(settings: VoiceKitSettings) -> PhraseCache | None:
    """The cache ``[server] phrase_cache_mb`` and ``phrase_cache_dir`` describe (None: off)."""
    server = settings.server
    if server.phrase_cache_mb == 0:
        return None
    return PhraseCache(server.phrase_cache_dir, memory_bytes=server.phrase_cache_mb * 1024 * 1024)
