"""The call's persistent ElevenLabs connection (``multi-stream-input``).

One WebSocket per call, one context per utterance, at most 5 contexts open (a semaphore;
a context's slot is freed by its ``isFinal``). A reader task routes audio to utterances by
context id. A keepalive keeps the socket open between replies without ever touching a
context that has not been initialised. If the socket drops, the session reconnects with
bounded backoff and re-sends, for each open utterance, the text not yet spoken.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import anyio
from websockets.exceptions import ConnectionClosed

from voicekit.audio import AudioFormat
from voicekit.background import BackgroundTasks
from voicekit.errors import ProviderError, ProviderUnavailable
from voicekit.reconnect import ReconnectBudget
from voicekit.tts import TTSSession
from voicekit.websocket import close_websocket, connect_websocket
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
    from voicekit_elevenlabs.settings import ElevenLabsSettings

__all__ = ["MAX_CONTEXTS", "ElevenLabsSession"]

logger = logging.getLogger(__name__)

MAX_CONTEXTS = 5
PROVIDER = "elevenlabs"


class ElevenLabsSession(TTSSession):
    def __init__(self, settings: ElevenLabsSettings, fmt: AudioFormat, call_id: str | None):
        self.settings = settings
        self.format = fmt
        self.call_id = call_id or "-"
        self._output_format = output_format_name(fmt)
        self._ws: Any = None
        self._connected = False
        self._closing = False
        self._tasks = self.own(
            BackgroundTasks(f"elevenlabs call={call_id or '-'}", on_error=self._task_failed)
        )
        self._send_lock = anyio.Lock()
        self._slots = anyio.Semaphore(MAX_CONTEXTS)
        self._open: dict[str, ElevenLabsUtterance] = {}
        self._seq = 0
        self._last_send = 0.0
        self._last_error: str | None = None
        self.malformed = 0
        self.reconnects = 0
        self._budget = ReconnectBudget()
        self._broken: ProviderError | None = None  # set when the session gave up

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> ElevenLabsSession:
        await self._connect()
        await self._tasks.__aenter__()
        self._tasks.start(self._reader)
        self._tasks.start(self._keepalive)
        return self

    async def aclose(self) -> None:
        """Close the connection and stop the background tasks; bounded, from any task."""
        if self._closing:
            return
        self._closing = True
        for utt in list(self._open.values()):
            utt.fail(ProviderError("TTS session closed", provider=PROVIDER))
        graceful = True
        try:
            if self._ws is not None and self._connected:
                with anyio.move_on_after(1.0):
                    await self._ws.send(json.dumps({"close_socket": True}))
        except (ConnectionClosed, OSError):
            pass
        except BaseException:
            graceful = False
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await close_websocket(self._ws, 1.0 if graceful else 0.0)
                await self.stop_owned_tasks()  # reader and keepalive: stopped and finished

    def utterance(self) -> ElevenLabsUtterance:
        self._seq += 1
        return ElevenLabsUtterance(self, f"{self.call_id}-{self._seq}")

    # -- connecting ----------------------------------------------------------------------------

    def _url(self) -> str:
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

    async def _connect(self) -> None:
        headers = {"xi-api-key": self.settings.api_key.get_secret_value()}
        self._ws = await connect_websocket(
            self._url(),
            headers,
            provider=PROVIDER,
            label="ElevenLabs",
            key_env="ELEVENLABS_API_KEY",
            open_timeout_s=self.settings.timeout,
            max_size=2**24,
        )
        self._connected = True
        self._last_send = anyio.current_time()

    async def _reconnect(self) -> None:
        """After a drop: connect again, then re-send what each open utterance still owes."""
        self._connected = False
        self.reconnects += 1
        try:
            await self._connect()
        except ProviderError as exc:
            logger.error("call=%s: ElevenLabs reconnect failed: %s", self.call_id, exc)
            self._fail_open(exc)
            return
        logger.warning(
            "call=%s: ElevenLabs connection restored (reconnect %d)", self.call_id, self.reconnects
        )
        for utt in list(self._open.values()):
            if utt.cancelled:
                self._forget(utt)
                continue
            utt.initialized = False
            utt.rewind_to_word_start()  # a word cut by the drop is said again, whole
            utt.close_sent = False
            utt.flush_sent_to = utt.spoken  # a flush not yet spoken is asked for again
            await self.sync(utt)

    def _task_failed(self, exc: Exception) -> None:
        """A background task died (a bug): fail open replies rather than leave them waiting."""
        self._broken = ProviderError(f"ElevenLabs session failed: {exc}", provider=PROVIDER)
        self._fail_open(self._broken)

    def _fail_open(self, error: Exception) -> None:
        for utt in list(self._open.values()):
            utt.fail(error)
            self._forget(utt)

    def _forget(self, utt: ElevenLabsUtterance) -> None:
        if self._open.pop(utt.context_id, None) is not None and utt.holds_slot:
            utt.holds_slot = False
            self._slots.release()

    # -- sending -------------------------------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        await self._ws.send(json.dumps(message))
        self._last_send = anyio.current_time()

    async def sync(self, utt: ElevenLabsUtterance) -> None:
        """Bring the server up to date with ``utt``: init, new text, flush, close."""
        if utt.cancelled or utt.finished:
            return
        if self._broken is not None:
            utt.fail(self._broken)
            return
        if not utt.holds_slot:
            await self._slots.acquire()
            utt.holds_slot = True
            self._open[utt.context_id] = utt
        async with self._send_lock:
            if not self._connected:
                return  # the reconnect re-sends everything this utterance owes
            try:
                if not utt.initialized:
                    await self._send(
                        {
                            "text": " ",
                            "context_id": utt.context_id,
                            "voice_settings": self.settings.voice_settings.model_dump(),
                            "generation_config": {
                                "chunk_length_schedule": self.settings.chunk_length_schedule
                            },
                        }
                    )
                    utt.initialized = True
                end = utt.sendable_to()
                if utt.sent < end:
                    text = utt.log[utt.sent : end]
                    if text.strip():  # whole words, ending in one space as the API asks
                        text = text.rstrip() + " "
                        await self._send({"text": text, "context_id": utt.context_id})
                    utt.sent = end
                if utt.flushed_to > utt.flush_sent_to:
                    await self._send({"context_id": utt.context_id, "flush": True})
                    utt.flush_sent_to = utt.flushed_to
                if utt.ended and not utt.close_sent:
                    await self._send({"context_id": utt.context_id, "close_context": True})
                    utt.close_sent = True
            except (ConnectionClosed, OSError):
                return  # the reader sees the drop and reconnects

    async def close_context(self, utt: ElevenLabsUtterance) -> None:
        """Cancel: tell the server, keep the slot until its ``isFinal`` (or a short wait)."""
        async with self._send_lock:
            if self._connected and utt.initialized and not utt.close_sent:
                try:
                    await self._send({"context_id": utt.context_id, "close_context": True})
                    utt.close_sent = True
                except (ConnectionClosed, OSError):
                    pass
        if not utt.initialized or not self._connected:
            self._forget(utt)
        else:
            self._tasks.start(self._release_later, utt)

    async def _release_later(self, utt: ElevenLabsUtterance) -> None:
        await anyio.sleep(max(2.0, self.settings.timeout))
        self._forget(utt)

    async def _keepalive(self) -> None:
        interval = self.settings.keepalive_interval_s or min(
            60.0, self.settings.inactivity_timeout / 3
        )
        while True:
            await anyio.sleep(max(0.05, self._last_send + interval - anyio.current_time()))
            if anyio.current_time() - self._last_send < interval or not self._connected:
                continue
            live = next(
                (
                    u
                    for u in self._open.values()
                    if u.initialized and not u.cancelled and not u.close_sent
                ),
                None,
            )
            message = {"context_id": live.context_id, "text": ""} if live else {"text": ""}
            async with self._send_lock:
                try:
                    await self._send(message)
                except (ConnectionClosed, OSError):
                    pass

    # -- receiving -------------------------------------------------------------------------

    async def _reader(self) -> None:
        while not self._closing:
            ws = self._ws
            try:
                async for raw in ws:
                    self._dispatch(raw)
            except ConnectionClosed:
                pass
            if self._closing:
                return
            code, reason = ws.close_code, ws.close_reason or self._last_error or ""
            if code == 1008:
                error = ProviderError(
                    f"ElevenLabs closed the connection: {reason}",
                    provider=PROVIDER,
                    status_code=1008,
                )
                logger.error("call=%s: %s", self.call_id, error)
                self._fail_open(error)
            else:
                logger.warning(
                    "call=%s: ElevenLabs connection dropped (code %s); reconnecting",
                    self.call_id,
                    code,
                )
            async with self._send_lock:
                self._connected = False
            if not self._budget.spend():
                error = ProviderUnavailable(
                    "ElevenLabs keeps dropping the connection", provider=PROVIDER
                )
                logger.error("call=%s: giving up after repeated reconnects", self.call_id)
                self._fail_open(error)
                self._broken = error
                return
            await self._reconnect()

    def _dispatch(self, raw: str | bytes) -> None:
        try:
            events = parse_message(raw)
        except MalformedMessage as exc:
            self.malformed += 1
            logger.warning("call=%s: skipped a malformed ElevenLabs message: %s", self.call_id, exc)
            return
        for event in events:
            utt = self._open.get(event.context_id or "")
            if isinstance(event, AudioEvent):
                if utt is not None:
                    utt.deliver(event.audio, event.alignment)
            elif isinstance(event, FinalEvent):
                if utt is not None:
                    utt.finish()
                    self._forget(utt)
            elif isinstance(event, ErrorEvent):
                self._last_error = event.message
                logger.error(
                    "call=%s: ElevenLabs error %s: %s", self.call_id, event.error, event.message
                )
