"""One utterance = one ElevenLabs context on the call's multi-stream connection.

The utterance is a passive buffer: it keeps what its caller asked for (the text pushed,
how much of it to generate now, whether it ended or was cancelled) and the audio that
came back. It tells the session when that changes, and the session reads it, keeps the
wire state of the context itself (what was sent, what was spoken, what a reconnect owes)
and writes audio into it: data flows one way.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from voicekit.tts import AudioChunk, Utterance

if TYPE_CHECKING:
    from voicekit_elevenlabs.session import ElevenLabsSession

__all__ = ["ElevenLabsUtterance"]


class _End:
    """All audio of the utterance has been delivered."""


class ElevenLabsUtterance(Utterance):
    """``log`` is every character pushed; ``flushed_to`` is how much of it must be
    generated now (a flush or the end). Text past the last word boundary waits for the
    rest of its word, so no word is ever split (the session decides what goes out)."""

    def __init__(self, session: ElevenLabsSession, context_id: str) -> None:
        self._session = session
        self.context_id = context_id
        self.log = ""
        self.flushed_to = 0
        self.ended = False
        self.cancelled = False
        self.finished = False
        send, recv = anyio.create_memory_object_stream[AudioChunk | _End | Exception](math.inf)
        self._send: MemoryObjectSendStream[AudioChunk | _End | Exception] = send
        self._recv: MemoryObjectReceiveStream[AudioChunk | _End | Exception] = recv

    # -- Utterance API: the caller's intent ----------------------------------------------------

    async def push_text(self, text: str) -> None:
        if self.cancelled or self.ended or not text:
            return
        self.log += text
        await self._session.submit(self)

    async def flush(self) -> None:
        if self.cancelled or self.ended:
            return
        self.flushed_to = len(self.log)
        await self._session.submit(self)

    async def end(self) -> None:
        if self.cancelled or self.ended:
            return
        self.ended = True
        self.flushed_to = len(self.log)
        await self._session.submit(self)

    async def cancel(self) -> None:
        if self.cancelled or self.finished:
            return
        self.cancelled = True
        self._send.send_nowait(_End())
        await self._session.withdraw(self)

    async def __aiter__(self) -> AsyncIterator[AudioChunk]:
        async for item in self._recv:
            if isinstance(item, _End) or self.cancelled:
                return  # audio received before cancel() stays undelivered
            if isinstance(item, Exception):
                raise item
            yield item

    # -- written by the session ----------------------------------------------------------------

    def deliver(self, chunk: AudioChunk) -> None:
        if not (self.cancelled or self.finished):
            self._send.send_nowait(chunk)

    def finish(self) -> None:
        """The server's ``isFinal``: no more audio for this context."""
        if not self.finished:
            self.finished = True
            self._send.send_nowait(_End())

    def fail(self, error: Exception) -> None:
        if not self.finished and not self.cancelled:
            self.finished = True
            self._send.send_nowait(error)
