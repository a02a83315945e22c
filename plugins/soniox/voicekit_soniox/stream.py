"""One Soniox real-time session per call, surviving dropped connections.

Audio goes out as binary frames in the call's codec. Audio not yet covered by final
results is kept (at most ``replay_s`` seconds); if the connection drops, the stream
reconnects with backoff, sends the config again, and re-sends that audio first, so no
word is lost and none is finalised twice.
"""

from __future__ import annotations

import json
import logging
import math
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from websockets.exceptions import ConnectionClosed

from voicekit.audio import AudioFormat
from voicekit.background import BackgroundTasks
from voicekit.errors import ProviderError, ProviderUnavailable
from voicekit.reconnect import ReconnectBudget
from voicekit.stt import FinalizeOutcome, STTEvent, STTStream
from voicekit.websocket import close_websocket, connect_websocket, send_message
from voicekit_soniox.tokens import PROVIDER, MalformedResponse, TokenState

if TYPE_CHECKING:
    from voicekit_soniox.settings import SonioxSettings

__all__ = ["SonioxStream"]

logger = logging.getLogger(__name__)


class SonioxStream(STTStream):
    def __init__(self, settings: SonioxSettings, fmt: AudioFormat, call_id: str | None) -> None:
        self.settings = settings
        self.format = fmt
        self.call_id = call_id or "-"
        self._ws: Any = None
        self._connected = False
        self._closing = False
        self._tasks = self.own(
            BackgroundTasks(f"soniox call={call_id or '-'}", on_error=self._task_failed)
        )
        self._lock = anyio.Lock()
        self._state = TokenState()
        self._sent_ms = 0.0  # audio sent over the whole call
        self._replay: deque[tuple[float, bytes]] = deque()  # (start_ms, audio) not yet final
        self._last_audio = 0.0
        self._fin = anyio.Event()
        self._finished = anyio.Event()
        send, recv = anyio.create_memory_object_stream[STTEvent | Exception](math.inf)
        self._events: MemoryObjectSendStream[STTEvent | Exception] = send
        self._recv: MemoryObjectReceiveStream[STTEvent | Exception] = recv
        self.malformed = 0
        self.reconnects = 0
        self._budget = ReconnectBudget()

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> SonioxStream:
        await self._connect()
        self._connected = True
        await self._tasks.__aenter__()
        self._tasks.start(self._reader)
        self._tasks.start(self._keepalive)
        return self

    async def aclose(self) -> None:
        """End of audio: an empty frame, the remaining results and ``finished``, then close.

        Bounded, and safe from any task: a caller's timeout or cancellation cuts the wait
        for the last results short, and the socket and background tasks are closed
        either way."""
        if self._closing:
            return
        self._closing = True
        graceful = True
        try:
            with anyio.move_on_after(max(2.0, self.settings.timeout)):
                if self._connected:
                    try:
                        async with self._lock:
                            await self._ws.send(b"")
                        await self._finished.wait()
                    except (ConnectionClosed, OSError):
                        pass
        except BaseException:
            graceful = False
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await close_websocket(self._ws, 1.0 if graceful else 0.0)
                await self.stop_owned_tasks()  # reader and keepalive: stopped and finished
                self._events.close()

    def _task_failed(self, exc: Exception) -> None:
        """A background task died (a bug): end the event stream with the error."""
        if not self._closing:
            self._events.send_nowait(
                ProviderError(f"Soniox stream failed: {exc}", provider=PROVIDER)
            )

    # -- connecting ----------------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        s = self.settings
        config: dict[str, Any] = {
            "model": s.model,
            "audio_format": self.format.encoding,
            "sample_rate": self.format.sample_rate,
            "num_channels": self.format.channels,
            "language_hints": s.language_hints,
            "enable_endpoint_detection": s.enable_endpoint_detection,
            "max_endpoint_delay_ms": s.max_endpoint_delay_ms,
            "client_reference_id": self.call_id[:256],
        }
        if s.context is not None:
            config["context"] = s.context
        if s.api_key_in_config:
            config["api_key"] = s.api_key.get_secret_value()
        return config

    async def _connect(self) -> None:
        s = self.settings
        headers = (
            {}
            if s.api_key_in_config
            else {"Authorization": f"Bearer {s.api_key.get_secret_value()}"}
        )
        self._ws = await connect_websocket(
            s.url,
            headers,
            provider=PROVIDER,
            label="Soniox",
            key_env="SONIOX_API_KEY",
            open_timeout_s=s.timeout,
        )
        try:
            await self._ws.send(json.dumps(self._config()))
        except ConnectionClosed as exc:
            raise ProviderUnavailable(
                f"Soniox closed the connection at once: {exc}", provider=PROVIDER
            ) from None

    async def _reconnect(self) -> bool:
        """Connect again and replay the audio not yet covered by final results."""
        self.reconnects += 1
        async with self._lock:
            self._connected = False
            try:
                await self._connect()
            except ProviderError as exc:
                logger.error("call=%s: Soniox reconnect failed: %s", self.call_id, exc)
                self._events.send_nowait(exc)
                return False
            start = self._replay[0][0] if self._replay else self._sent_ms
            self._state.offset_ms = start
            self._state.in_speech = False
            self._state.partial = ""
            # Audio keeps arriving while the replay is sent: send_audio only queues it
            # until the connection is marked up, so everything goes out once, in order.
            sent_to = start
            try:
                while pending := [(t, a) for t, a in self._replay if t >= sent_to]:
                    for at, audio in pending:
                        await self._ws.send(audio)
                        sent_to = at + self.format.duration_ms(len(audio))
            except (ConnectionClosed, OSError):
                pass  # dropped again: the reader notices and reconnects
            self._connected = True
        logger.warning(
            "call=%s: Soniox connection restored; replayed %.0f ms of audio",
            self.call_id,
            self._sent_ms - start,
        )
        return True

    # -- audio out ------------------------------------------------------------------------------

    async def send_audio(self, data: bytes) -> None:
        if self._closing or not data:
            return
        start = self._sent_ms
        self._sent_ms += self.format.duration_ms(len(data))
        self._replay.append((start, data))
        self._trim_replay()
        self._last_audio = anyio.current_time()
        if not self._connected:
            return  # kept for replay once the connection is back
        try:
            await send_message(self._ws, data)
        except (ConnectionClosed, OSError):
            pass  # the reader reconnects and replays

    def _trim_replay(self) -> None:
        covered = self._state.final_ms
        limit = self._sent_ms - self.settings.replay_s * 1000
        while self._replay:
            start, audio = self._replay[0]
            end = start + self.format.duration_ms(len(audio))
            if end <= covered or start < limit:
                self._replay.popleft()
            else:
                break

    async def finalize(self) -> FinalizeOutcome:
        """``{"type": "finalize"}``, then wait for Soniox's ``<fin>``."""
        if not self._connected or self._closing:
            return "not_connected"
        self._fin = anyio.Event()
        try:
            async with self._lock:
                await self._ws.send(json.dumps({"type": "finalize"}))
        except (ConnectionClosed, OSError):
            return "not_connected"
        with anyio.move_on_after(self.settings.timeout):
            await self._fin.wait()
            return "finalized"
        logger.warning(
            "call=%s: Soniox did not confirm finalize within %.1f s",
            self.call_id,
            self.settings.timeout,
        )
        return "timed_out"

    async def _keepalive(self) -> None:
        every = self.settings.keepalive_s
        while True:
            await anyio.sleep(max(0.05, self._last_audio + every - anyio.current_time()))
            if anyio.current_time() - self._last_audio < every or not self._connected:
                continue
            try:
                async with self._lock:
                    await self._ws.send(json.dumps({"type": "keepalive"}))
                self._last_audio = anyio.current_time()
            except (ConnectionClosed, OSError):
                pass

    # -- results in ------------------------------------------------------------------------------

    async def __aiter__(self) -> AsyncIterator[STTEvent]:
        async for item in self._recv:
            if isinstance(item, Exception):
                raise item
            yield item

    async def _reader(self) -> None:
        while True:
            ws = self._ws
            error: ProviderError | None = None
            try:
                async for raw in ws:
                    try:
                        events = self._state.feed(raw)
                    except MalformedResponse as exc:
                        self.malformed += 1
                        logger.warning(
                            "call=%s: skipped a malformed Soniox response: %s", self.call_id, exc
                        )
                        continue
                    except ProviderError as exc:
                        error = exc
                        break
                    for event in events:
                        self._events.send_nowait(event)
                    if self._state.fin:
                        self._state.fin = False
                        self._fin.set()
                    if self._state.finished:
                        self._finished.set()
                    self._trim_replay()
            except ConnectionClosed:
                pass
            if self._closing or self._finished.is_set():
                return
            if error is not None and not error.retryable:
                logger.error("call=%s: %s", self.call_id, error)
                self._events.send_nowait(error)
                return
            if not self._budget.spend():
                failure = error or ProviderUnavailable(
                    "Soniox keeps dropping the connection", provider=PROVIDER
                )
                logger.error(
                    "call=%s: giving up after repeated reconnects: %s", self.call_id, failure
                )
                self._events.send_nowait(failure)
                return
            logger.warning(
                "call=%s: Soniox connection lost (%s); reconnecting",
                self.call_id,
                error or f"close code {ws.close_code}",
            )
            if not await self._reconnect():
                return
