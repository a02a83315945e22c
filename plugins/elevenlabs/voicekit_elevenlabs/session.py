"""The call's persistent ElevenLabs connection (``multi-stream-input``).

One WebSocket per call, one context per utterance, at most 5 contexts open (a semaphore;
a context's slot is freed by its ``isFinal``). The session keeps each context's wire
state and sends text a whole word at a time, each message ending in one space; audio
comes back routed by context id. A keepalive keeps the socket open between replies
without ever touching a context that has not been initialised. If the socket drops, the
session reconnects and re-sends, for each open context, the text not yet spoken (from
the start of a word cut by the drop). The connection itself (connect, reader, keepalive,
reconnect budget, bounded close) is :class:`voicekit.persistent.PersistentWebSocket`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlencode

import anyio

from voicekit.audio import AudioFormat
from voicekit.errors import ProviderError
from voicekit.persistent import PersistentWebSocket
from voicekit.tts import Alignment, AudioChunk, TTSSession
from voicekit_elevenlabs.formats import output_format_name
from voicekit_elevenlabs.protocol import (
    AudioEvent,
    ErrorEvent,
    FinalEvent,
    MalformedMessage,
    parse_message,
)
from voicekit_elevenlabs.utterance import ElevenLabsUtterance

if TYPE_CHECKING:
    from voicekit.retry import RetryPolicy
    from voicekit_elevenlabs.settings import ElevenLabsSettings

__all__ = ["MAX_CONTEXTS", "ElevenLabsSession"]

logger = logging.getLogger(__name__)

MAX_CONTEXTS = 5
PROVIDER = "elevenlabs"


@dataclass(eq=False)
class _Context:
    """The wire state of one utterance's context on the current connection."""

    utterance: ElevenLabsUtterance
    sent: int = 0  # characters of the utterance's log sent on this connection
    spoken: int = 0  # characters covered by the alignment of received audio
    initialized: bool = False  # the init message went on this connection
    flush_sent_to: int = 0  # the log up to here was flushed on this connection
    close_sent: bool = False
    holds_slot: bool = False
    word_cut: bool = False  # the next audio follows a word a drop cut off

    @property
    def id(self) -> str:
        return self.utterance.context_id

    def sendable_to(self) -> int:
        """How far into the log may go out now: everything flushed, then whole words."""
        utt = self.utterance
        end = len(utt.log)
        if utt.flushed_to >= end:
            return end
        floor = max(self.sent, utt.flushed_to)
        for i in range(end - 1, floor - 1, -1):
            if utt.log[i].isspace():
                return i + 1
        return floor

    def advance(self, chars: tuple[str, ...]) -> None:
        """Move ``spoken`` past the characters received audio speaks (whitespace may
        differ from what was sent)."""
        log = self.utterance.log
        for ch in chars:
            while self.spoken < len(log) and log[self.spoken] != ch:
                if not log[self.spoken].isspace():
                    break
                self.spoken += 1
            if self.spoken < len(log) and log[self.spoken] == ch:
                self.spoken += 1

    def rewind(self) -> None:
        """After a reconnect: re-send from the start of the word audio stopped in. The
        caller heard its first part; it is said again whole, as a person repairs a cut
        word, and the next audio's alignment starts with a space ("th the")."""
        log, start = self.utterance.log, self.spoken
        while start > 0 and not log[start - 1].isspace():
            start -= 1
        self.word_cut = start < self.spoken
        self.spoken = self.sent = self.flush_sent_to = start
        self.initialized = self.close_sent = False


class ElevenLabsSession(PersistentWebSocket, TTSSession):
    provider: ClassVar[str] = PROVIDER
    label: ClassVar[str] = "ElevenLabs"
    key_env: ClassVar[str] = "ELEVENLABS_API_KEY"
    max_size: ClassVar[int] = 2**24

    def __init__(
        self,
        settings: ElevenLabsSettings,
        fmt: AudioFormat,
        call_id: str | None,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            call_id=call_id,
            open_timeout_s=settings.timeout,
            keepalive_interval_s=settings.keepalive_interval_s
            or min(60.0, settings.inactivity_timeout / 3),
            goodbye_timeout_s=1.0,
            policy=policy,
        )
        self.settings = settings
        self.format = fmt
        self._output_format = output_format_name(fmt)
        self._slots = anyio.Semaphore(MAX_CONTEXTS)
        self._contexts: dict[str, _Context] = {}
        self._seq = 0
        self._last_error: str | None = None
        self._broken: ProviderError | None = None  # set when the session gave up
        self.malformed = 0

    def utterance(self) -> ElevenLabsUtterance:
        self._seq += 1
        return ElevenLabsUtterance(self, f"{self.call_id}-{self._seq}")

    # -- the connection ------------------------------------------------------------------

    def url(self) -> str:
        s = self.settings
        query: dict[str, str] = {
            "model_id": s.model_id,
            "output_format": self._output_format,
            "inactivity_timeout": str(s.inactivity_timeout),
            "sync_alignment": "true",
            "enable_ssml_parsing": "true" if s.enable_ssml_parsing else "false",
            "apply_text_normalization": s.apply_text_normalization,
        }
        if s.language_code:
            query["language_code"] = s.language_code
        base = s.url.rstrip("/")
        return f"{base}/v1/text-to-speech/{s.voice_id}/multi-stream-input?{urlencode(query)}"

    def headers(self) -> dict[str, str]:
        return {"xi-api-key": self.settings.api_key.get_secret_value()}

    async def on_reconnect(self) -> None:
        for ctx in list(self._contexts.values()):
            if ctx.utterance.cancelled:
                self._forget(ctx)
                continue
            ctx.rewind()
            await self._sync_locked(ctx)

    def close_error(self, code: int | None, reason: str) -> ProviderError | None:
        if code != 1008:
            return None
        return ProviderError(
            f"ElevenLabs closed the connection: {reason or self._last_error or ''}",
            provider=PROVIDER,
            status_code=1008,
        )

    def keepalive_message(self) -> str:
        live = next(
            (
                c
                for c in self._contexts.values()
                if c.initialized and not c.utterance.cancelled and not c.close_sent
            ),
            None,
        )
        return json.dumps({"context_id": live.id, "text": ""} if live else {"text": ""})

    async def goodbye(self) -> None:
        await self.send(json.dumps({"close_socket": True}))

    def on_failure(self, error: ProviderError) -> None:
        self._broken = error
        for ctx in list(self._contexts.values()):
            ctx.utterance.fail(error)
            self._forget(ctx)

    async def aclose(self) -> None:
        if not self.closing:
            for ctx in list(self._contexts.values()):
                ctx.utterance.fail(ProviderError("TTS session closed", provider=PROVIDER))
        await super().aclose()

    def _forget(self, ctx: _Context) -> None:
        if self._contexts.pop(ctx.id, None) is not None and ctx.holds_slot:
            ctx.holds_slot = False
            self._slots.release()

    # -- text out ------------------------------------------------------------------------

    async def submit(self, utt: ElevenLabsUtterance) -> None:
        """The utterance's intent changed (text, flush, end): bring the server up to date."""
        if utt.cancelled or utt.finished:
            return
        if self._broken is not None:
            utt.fail(self._broken)
            return
        ctx = self._contexts.get(utt.context_id)
        if ctx is None:
            ctx = _Context(utt)
            await self._slots.acquire()
            ctx.holds_slot = True
            self._contexts[ctx.id] = ctx
        async with self.locked():
            await self._sync_locked(ctx)

    async def _sync_locked(self, ctx: _Context) -> None:
        """Init, new whole words, flush, close: what the context owes, under the lock."""
        if not self.usable:
            return  # the reconnect re-sends everything this context owes
        utt = ctx.utterance
        if not ctx.initialized:
            init = {
                "text": " ",
                "context_id": ctx.id,
                "voice_settings": self.settings.voice_settings.model_dump(),
                "generation_config": {"chunk_length_schedule": self.settings.chunk_length_schedule},
            }
            if not await self.send_locked(json.dumps(init)):
                return
            ctx.initialized = True
        end = ctx.sendable_to()
        if ctx.sent < end:
            text = utt.log[ctx.sent : end]
            if text.strip():  # whole words, ending in one space as the API asks (the last
                # message ended in one, so a leading space would double it)
                message = {"text": text.strip() + " ", "context_id": ctx.id}
                if not await self.send_locked(json.dumps(message)):
                    return
            ctx.sent = end
        if utt.flushed_to > ctx.flush_sent_to:
            if not await self.send_locked(json.dumps({"context_id": ctx.id, "flush": True})):
                return
            ctx.flush_sent_to = utt.flushed_to
        if utt.ended and not ctx.close_sent:
            if await self.send_locked(json.dumps({"context_id": ctx.id, "close_context": True})):
                ctx.close_sent = True

    async def withdraw(self, utt: ElevenLabsUtterance) -> None:
        """Cancel: tell the server, keep the slot until its ``isFinal`` (or a short wait)."""
        ctx = self._contexts.get(utt.context_id)
        if ctx is None:
            return
        async with self.locked():
            if ctx.initialized and not ctx.close_sent:
                message = {"context_id": ctx.id, "close_context": True}
                ctx.close_sent = await self.send_locked(json.dumps(message))
        if not ctx.initialized or not self.usable or self.closing:
            self._forget(ctx)
        else:
            self.start_task(self._release_later, ctx)

    async def _release_later(self, ctx: _Context) -> None:
        await anyio.sleep(max(2.0, self.settings.timeout))
        self._forget(ctx)

    # -- audio in ------------------------------------------------------------------------

    def on_message(self, raw: str | bytes) -> None:
        try:
            events = parse_message(raw)
        except MalformedMessage as exc:
            self.malformed += 1
            logger.warning("call=%s: skipped a malformed ElevenLabs message: %s", self.call_id, exc)
            return
        for event in events:
            ctx = self._contexts.get(event.context_id or "")
            if isinstance(event, AudioEvent):
                if ctx is not None:
                    ctx.utterance.deliver(AudioChunk(event.audio, self._aligned(ctx, event)))
            elif isinstance(event, FinalEvent):
                if ctx is not None:
                    ctx.utterance.finish()
                    self._forget(ctx)
            elif isinstance(event, ErrorEvent):
                self._last_error = event.message
                logger.error(
                    "call=%s: ElevenLabs error %s: %s", self.call_id, event.error, event.message
                )

    @staticmethod
    def _aligned(ctx: _Context, event: AudioEvent) -> Alignment | None:
        alignment = event.alignment
        if alignment is None:
            return None
        ctx.advance(alignment.chars)
        if ctx.word_cut:
            ctx.word_cut = False
            return Alignment(
                (" ", *alignment.chars), (0, *alignment.start_ms), (0, *alignment.duration_ms)
            )
        return alignment
