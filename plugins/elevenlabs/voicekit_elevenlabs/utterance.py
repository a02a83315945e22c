"""One utterance = one ElevenLabs context on the call's multi-stream connection."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from voicekit.tts import Alignment, AudioChunk, Utterance

if TYPE_CHECKING:
    from voicekit_elevenlabs.session import ElevenLabsSession

__all__ = ["ElevenLabsUtterance"]


class _End:
    """All audio of the utterance has been delivered."""


class ElevenLabsUtterance(Utterance):
    """Text goes out a whole word at a time as it is pushed; audio comes back by iteration.

    ``log`` is every character pushed. The session sends it up to the last word boundary
    (the text after it may be the first half of a word still arriving), and all of it on
    :meth:`flush` or :meth:`end`; ``flushed_to`` is how much of ``log`` a flush has asked
    for. ``spoken`` is how far the alignment of received audio has reached into it. After
    a reconnect the session re-sends ``log[spoken:]`` (whole words again), so the caller
    hears every word once.
    """

    def __init__(self, session: ElevenLabsSession, context_id: str) -> None:
        self.session = session
        self.context_id = context_id
        self.log = ""
        self.sent = 0  # characters of ``log`` sent on the current connection
        self.spoken = 0  # characters of ``log`` covered by received alignment
        self.initialized = False  # init message sent on the current connection
        self.flushed_to = 0  # ``log`` up to here must be generated now (flush or end)
        self.flush_sent_to = 0  # ...and the current connection has been told up to here
        self.ended = False
        self.close_sent = False
        self.cancelled = False
        self.finished = False
        self.holds_slot = False
        self._word_cut = False
        send, recv = anyio.create_memory_object_stream[AudioChunk | _End | Exception](math.inf)
        self._send: MemoryObjectSendStream[AudioChunk | _End | Exception] = send
        self._recv: MemoryObjectReceiveStream[AudioChunk | _End | Exception] = recv

    # -- Utterance API ---------------------------------------------------------------------

    async def push_text(self, text: str) -> None:
        if self.cancelled or self.ended or not text:
            return
        self.log += text
        await self.session.sync(self)

    async def flush(self) -> None:
        if self.cancelled or self.ended:
            return
        self.flushed_to = len(self.log)
        await self.session.sync(self)

    async def end(self) -> None:
        if self.cancelled or self.ended:
            return
        self.ended = True
        self.flushed_to = len(self.log)
        await self.session.sync(self)

    def rewind_to_word_start(self) -> None:
        """After a reconnect: re-send from the start of the word audio stopped in.

        The caller has heard that word's first part; it is said again whole, as a person
        repairs a cut-off word, and the next audio's alignment starts with a space, so the
        words heard read "th the", never "ththe".
        """
        start = self.spoken
        while start > 0 and not self.log[start - 1].isspace():
            start -= 1
        self._word_cut = start < self.spoken
        self.spoken = self.sent = start

    def sendable_to(self) -> int:
        """How far into ``log`` may go out now: everything flushed, then whole words."""
        end = len(self.log)
        if self.flushed_to >= end:
            return end
        for i in range(end - 1, max(self.sent, self.flushed_to) - 1, -1):
            if self.log[i].isspace():
                return i + 1
        return max(self.sent, self.flushed_to)

    async def cancel(self) -> None:
        if self.cancelled or self.finished:
            return
        self.cancelled = True
        self._send.send_nowait(_End())
        await self.session.close_context(self)

    async def __aiter__(self) -> AsyncIterator[AudioChunk]:
        async for item in self._recv:
            if isinstance(item, _End) or self.cancelled:
                return  # audio received before cancel() stays undelivered
            if isinstance(item, Exception):
                raise item
            yield item

    # -- called by the session ----------------------------------------------------------------

    def deliver(self, audio: bytes, alignment: Alignment | None) -> None:
        if self.cancelled or self.finished:
            return
        if alignment is not None:
            self._advance(alignment.chars)
            if self._word_cut:
                self._word_cut = False
                alignment = Alignment(
                    (" ", *alignment.chars),
                    (0, *alignment.start_ms),
                    (0, *alignment.duration_ms),
                )
        self._send.send_nowait(AudioChunk(audio, alignment))

    def _advance(self, chars: tuple[str, ...]) -> None:
        """Move ``spoken`` past the characters this audio speaks (whitespace may differ)."""
        for ch in chars:
            while self.spoken < len(self.log) and self.log[self.spoken] != ch:
                if not self.log[self.spoken].isspace():
                    break
                self.spoken += 1
            if self.spoken < len(self.log) and self.log[self.spoken] == ch:
                self.spoken += 1

    def finish(self) -> None:
        """The server's ``isFinal``: no more audio for this context."""
        if not self.finished:
            self.finished = True
            self._send.send_nowait(_End())

    def fail(self, error: Exception) -> None:
        if not self.finished and not self.cancelled:
            self.finished = True
            self._send.send_nowait(error)
