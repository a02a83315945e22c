"""The phrase cache: audio and alignment of known text, kept in memory and on disk.

Known text (a greeting, a flow's scripts and reprompts, the apology, farewells, fillers)
is synthesised once per voice and then played with no TTS round-trip. The memory tier is
a byte-bounded LRU shared by every call of the process; the optional disk tier survives
restarts and is filled ahead of time by ``voicekit flow warm``. A miss is never an
error, and neither is a slow or broken disk: the reply synthesises live and the result
fills the cache.

Only audio whose alignment spells the whole phrase is cached: that is how a cut-off or
short synthesis is told from a complete one, so a provider that gives no alignment never
fills the cache. Disk writes run on a writer thread of their own and never hold up a
reply; disk reads are bounded by ``READ_TIMEOUT_S`` and count as a miss after it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread

from voicekit.audio import AudioFormat
from voicekit.config.settings import VoiceKitSettings
from voicekit.phrases.key import PhraseKey
from voicekit.phrases.store import PhraseStore
from voicekit.tts import TTS, AudioChunk

__all__ = ["CacheStats", "PhraseCache", "VoicePhrases", "covers", "phrase_cache"]

logger = logging.getLogger(__name__)

DEFAULT_MEMORY_BYTES = 64 * 1024 * 1024
READ_TIMEOUT_S = 0.5  # a disk that takes longer is a miss: the reply synthesises live
_READERS = 4  # reader threads per process: a hung mount can hold no more than these
_reader_pool: ThreadPoolExecutor | None = None
_reader_lock = threading.Lock()
# What one aligned character costs in memory beyond its audio (the tuples' entries).
_BYTES_PER_CHAR = 100


def covers(text: str, chunks: Sequence[AudioChunk]) -> bool:
    """Whether ``chunks`` speak all of ``text``: every chunk has audio's alignment and
    together they spell the text (whitespace aside)."""
    if not chunks or not any(c.data for c in chunks):
        return False
    if any(c.alignment is None for c in chunks):
        return False
    aligned = "".join(ch for c in chunks if c.alignment for ch in c.alignment.chars)
    return "".join(aligned.split()) == "".join(text.split())


def _size(chunks: tuple[AudioChunk, ...]) -> int:
    return sum(
        len(c.data) + 64 + (len(c.alignment.chars) * _BYTES_PER_CHAR if c.alignment else 0)
        for c in chunks
    )


def _read(store: PhraseStore, key: PhraseKey) -> tuple[AudioChunk, ...] | None:
    """``store.load(key)`` on a reader thread, given up after ``READ_TIMEOUT_S`` of wall
    time (a FIFO, a hung network mount): blocking, run it in a worker thread."""
    global _reader_pool
    with _reader_lock:
        if _reader_pool is None:
            _reader_pool = ThreadPoolExecutor(_READERS, thread_name_prefix="voicekit-reads")
    future = _reader_pool.submit(store.load, key)
    try:
        return future.result(timeout=READ_TIMEOUT_S)
    except FutureTimeout:
        logger.warning("phrase cache: reading %s took too long; a miss", key.digest[:12])
        return None


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    stored: int = 0


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
        self._writer: ThreadPoolExecutor | None = None

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
            chunks = await anyio.to_thread.run_sync(_read, self.store, key, abandon_on_cancel=True)
            if chunks is not None:
                self.stats.disk_hits += 1
                self._remember(key, chunks)
                return chunks
        self.stats.misses += 1
        return None

    def put(self, key: PhraseKey, chunks: tuple[AudioChunk, ...]) -> bool:
        """Keep ``chunks`` as the audio of ``key`` if they speak it all: in memory now,
        on disk in the background. Returns whether they were kept."""
        if not covers(key.text, chunks):
            return False
        self._remember(key, chunks)
        self.stats.stored += 1
        if self.store is not None:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(1, thread_name_prefix="voicekit-phrases")
            self._writer.submit(self.store.save, key, chunks)
        return True

    async def save(self, key: PhraseKey, chunks: tuple[AudioChunk, ...]) -> str | None:
        """Keep ``chunks`` and wait until they are on disk; None when done, else why not
        (what ``voicekit flow warm`` reports)."""
        if not covers(key.text, chunks):
            return "the TTS audio does not speak the whole text (or has no alignment)"
        self._remember(key, chunks)
        self.stats.stored += 1
        if self.store is None:
            return None
        return await anyio.to_thread.run_sync(self.store.save, key, chunks)

    def close(self) -> None:
        """Finish the disk writes still queued."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    def _remember(self, key: PhraseKey, chunks: tuple[AudioChunk, ...]) -> None:
        size = _size(chunks)
        if size > self.memory_bytes:
            return
        old = self._memory.pop(key, None)
        if old is not None:
            self._held -= _size(old)
        self._memory[key] = chunks
        self._held += size
        while self._held > self.memory_bytes:
            _, evicted = self._memory.popitem(last=False)
            self._held -= _size(evicted)


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

    @classmethod
    def of(cls, cache: PhraseCache, tts: TTS, fmt: AudioFormat) -> VoicePhrases:
        """The cache as ``tts`` speaking in ``fmt`` sees it."""
        return cls(cache, provider=tts.name, voice=tts.voice_identity(), fmt=fmt)

    def key(self, text: str) -> PhraseKey:
        return PhraseKey.of(self.provider, self.voice, self.fmt, text)

    async def get(self, text: str) -> tuple[AudioChunk, ...] | None:
        """The phrase, or None on a miss (or any failure to read it: never an error)."""
        try:
            return await self.cache.get(self.key(text))
        except Exception as exc:
            logger.warning("phrase cache: lookup failed, synthesising live: %s", exc)
            return None

    def put(self, text: str, chunks: tuple[AudioChunk, ...]) -> bool:
        return self.cache.put(self.key(text), chunks)

    async def save(self, text: str, chunks: tuple[AudioChunk, ...]) -> str | None:
        return await self.cache.save(self.key(text), chunks)


def phrase_cache(settings: VoiceKitSettings) -> PhraseCache | None:
    """The cache ``[server] phrase_cache_mb`` and ``phrase_cache_dir`` describe (None: off)."""
    server = settings.server
    if server.phrase_cache_mb == 0:
        return None
    return PhraseCache(server.phrase_cache_dir, memory_bytes=server.phrase_cache_mb * 1024 * 1024)
