"""One Soniox real-time session per call, surviving dropped connections.

Audio goes out as binary frames in the call's codec. Audio not yet covered by final
results is kept (at most ``replay_s`` seconds); if the connection drops, the stream
reconnects with backoff, sends the config again, and re-sends that audio first, so no
word is lost and none is finalised twice. The connection itself (connect, reader,
keepalive, reconnect budget, bounded close) is :class:`voicekit.persistent.PersistentWebSocket`;
this module is Soniox's wire protocol only.
"""

from __future__ import annotations

import json
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from voicekit.audio import AudioFormat
from voicekit.errors import ProviderError, ProviderUnavailable
from voicekit.persistent import PersistentWebSocket
from voicekit.stt import FinalizeOutcome, STTEvent, STTStream
from voicekit_soniox.tokens import PROVIDER, MalformedResponse, TokenState

if TYPE_CHECKING:
    from voicekit.retry import RetryPolicy
    from voicekit_soniox.settings import SonioxSettings

__all__ = ["SonioxStream"]

logger = logging.getLogger(__name__)

TRIM_SLACK_MS = 1000.0  # audio kept past replay_s before the oldest is let go, in one pass


class SonioxStream(PersistentWebSocket, STTStream):
    provider: ClassVar[str] = PROVIDER
    label: ClassVar[str] = "Soniox"
    key_env: ClassVar[str] = "SONIOX_API_KEY"

    def __init__(
        self,
        settings: SonioxSettings,
        fmt: AudioFormat,
        call_id: str | None,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            call_id=call_id,
            open_timeout_s=settings.timeout,
            keepalive_interval_s=settings.keepalive_s,
            goodbye_timeout_s=max(2.0, settings.timeout),
            policy=policy,
        )
        self.settings = settings
        self.format = fmt
        self._state = TokenState(likely_over_ms=settings.likely_over_ms or None)
        self._sent_ms = 0.0  # audio sent over the whole call
        # (start_ms, end_ms, audio) not yet covered by final results
        self._replay: deque[tuple[float, float, bytes]] = deque()
        self._replay_ms = settings.replay_s * 1000
        self._bytes_per_s = fmt.bytes_per_second
        # Audio held until a piece of send_ms is whole (0: every frame goes at once).
        self._piece_bytes = fmt.bytes_for_ms(settings.send_ms) if settings.send_ms > 20 else 0
        self._pending = bytearray()
        self._fin = anyio.Event()
        self._finished = anyio.Event()
        send, recv = anyio.create_memory_object_stream[STTEvent | Exception](math.inf)
        self._events: MemoryObjectSendStream[STTEvent | Exception] = send
        self._recv: MemoryObjectReceiveStream[STTEvent | Exception] = recv
        self.malformed = 0

    # -- the connection --------------------------------------------------------------------

    def url(self) -> str:
        return self.settings.url

    def headers(self) -> Mapping[str, str]:
        if self.settings.api_key_in_config:
            return {}
        return {"Authorization": f"Bearer {self.settings.api_key.get_secret_value()}"}

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

    async def on_connected(self) -> None:
        if not await self.send_locked(json.dumps(self._config())):
            raise ProviderUnavailable(
                "Soniox closed the connection before taking its configuration",
                provider=PROVIDER,
            )

    async def on_reconnect(self) -> None:
        """Replay the audio not yet covered by final results, then what arrived meanwhile.

        ``send_audio`` only queues while this runs (the socket is not ``connected`` yet),
        so everything goes out once, in order."""
        self._trim_replay()  # exactly the last ``replay_s`` at most
        start = self._replay[0][0] if self._replay else self._sent_ms
        self._state.offset_ms = start
        self._state.in_speech = False
        self._state.partial = ""
        sent_to = start
        while pending := [item for item in self._replay if item[0] >= sent_to]:
            for _, end, audio in pending:
                if not await self.send_locked(audio):
                    return  # dropped again: the reader notices and reconnects
                sent_to = end
        logger.info(
            "call=%s: Soniox: replayed %.0f ms of audio", self.call_id, self._sent_ms - start
        )

    def keepalive_message(self) -> str:
        return json.dumps({"type": "keepalive"})

    def stream_done(self) -> bool:
        return self._finished.is_set()

    async def goodbye(self) -> None:
        """End of audio: what is held, an empty frame, then the remaining results and
        ``finished``."""
        await self._send_held()
        if await self.send(b""):
            await self._finished.wait()

    def on_failure(self, error: ProviderError) -> None:
        if not self.closing:
            self._events.send_nowait(error)

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            self._events.close()

    # -- audio out ------------------------------------------------------------------------

    async def send_audio(self, data: bytes) -> None:
        if self.closing or not data:
            return
        if self._piece_bytes:
            self._pending += data
            if len(self._pending) < self._piece_bytes:
                return
            data = bytes(self._pending)
            self._pending.clear()
        self._record(data)
        await self.send_now(data)  # if it cannot go now, the replay sends it

    def send_audio_now(self, data: bytes) -> bool:
        if self.closing or not data:
            return True  # as send_audio: nothing to send
        if self._piece_bytes:
            pending = self._pending
            if len(pending) + len(data) < self._piece_bytes:
                pending += data  # taken: it goes out with the frames that complete the piece
                return True
            if pending:
                data = bytes(pending) + data
        if not self.write_now(data):
            return False  # nothing taken: the held audio is still held, in order
        self._pending.clear()
        self._record(data)  # only once written: False must leave the stream as it was
        return True

    async def _send_held(self) -> None:
        """Send the audio held for a piece that is not whole yet (before a finalize or
        the end of the audio, which must follow every byte of it)."""
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            self._record(data)
            await self.send_now(data)

    def _record(self, data: bytes) -> None:
        """Count ``data`` as sent and keep it for a replay until its words are final.

        Runs for every frame: what is older than ``replay_s`` goes in batches, once
        ``TRIM_SLACK_MS`` more is held (a reconnect trims exactly first), and what final
        results cover goes as they arrive (:meth:`on_message`)."""
        start = self._sent_ms
        end = self._sent_ms = start + len(data) * 1000.0 / self._bytes_per_s
        replay = self._replay
        replay.append((start, end, data))
        if end - replay[0][0] > self._replay_ms + TRIM_SLACK_MS:
            self._trim_replay()

    def _trim_replay(self) -> None:
        covered = self._state.final_ms
        limit = self._sent_ms - self._replay_ms
        replay = self._replay
        while replay and (replay[0][1] <= covered or replay[0][0] < limit):
            replay.popleft()

    async def finalize(self) -> FinalizeOutcome:
        """``{"type": "finalize"}``, then wait for Soniox's ``<fin>``."""
        if not self.connected or self.closing:
            return "not_connected"
        self._fin = anyio.Event()
        await self._send_held()
        if not await self.send(json.dumps({"type": "finalize"})):
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

    # -- results in -----------------------------------------------------------------------

    async def __aiter__(self) -> AsyncIterator[STTEvent]:
        async for item in self._recv:
            if isinstance(item, Exception):
                raise item
            yield item

    def on_message(self, raw: str | bytes) -> None:
        try:
            events = self._state.feed(raw)  # an error_code response raises ProviderError
        except MalformedResponse as exc:
            self.malformed += 1
            logger.warning("call=%s: skipped a malformed Soniox response: %s", self.call_id, exc)
            return
        for event in events:
            self._events.send_nowait(event)
        if self._state.fin:
            self._state.fin = False
            self._fin.set()
        if self._state.finished:
            self._finished.set()
        self._trim_replay()
