"""One call's Telnyx media stream over the WebSocket Telnyx opened to us."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import numpy as np

from voicekit.audio import AudioFormat
from voicekit.telephony import (
    TEXT_HANDLER_EXTENSION,
    TEXT_WRITER_EXTENSION,
    CallInfo,
    Dtmf,
    InboundAudio,
    MarkReached,
    MediaEvent,
    MediaStream,
    StreamStopped,
)
from voicekit_telnyx.frames import (
    MAX_FRAME_BYTES,
    BadFrame,
    Connected,
    DtmfFrame,
    ErrorFrame,
    MarkFrame,
    MediaFrame,
    StartFrame,
    StopFrame,
    clear_frame,
    inbound_audio,
    mark_frame,
    media_frame,
    parse_frame,
)

__all__ = ["StreamRejected", "TelnyxMediaStream"]

logger = logging.getLogger(__name__)


# WebSocket close codes that mean the stream broke rather than ended: protocol error,
# unacceptable data, invalid payload, policy, message too big, server error.
PROTOCOL_ERRORS = frozenset({1002, 1003, 1007, 1008, 1009, 1011})


class StreamRejected(Exception):
    """The stream cannot be used (no start frame, or a start for another call)."""


def _swap16(data: bytes) -> bytes:
    return np.frombuffer(data, "<u2").byteswap().tobytes()


class TelnyxMediaStream(MediaStream):
    """One call's media over the WebSocket Telnyx opened.

    Malformed frames are skipped and counted in ``bad_frames`` (the first of each kind is
    logged as a warning, the rest at debug level, and a summary when the stream ends: a
    client sending garbage cannot flood the log). A hang-up while audio is being sent is
    a normal end of the stream, not an error.
    """

    def __init__(
        self,
        websocket: Any,
        *,
        call_id: str,
        outbound_format: AudioFormat,
        l16_big_endian: bool = False,
        details: dict[str, Any] | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        gone: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.websocket = websocket
        self._call_id = call_id
        self._out_fmt = outbound_format
        self._in_fmt: AudioFormat | None = None
        self._swap = l16_big_endian
        self._details = details or {}
        self._call: CallInfo | None = None
        self._send_lock = anyio.Lock(fast_acquire=True)  # uncontended: no checkpoint
        self._closed = False
        self._max_frame_bytes = max_frame_bytes
        # What the socket raises once the far end is gone (Starlette's WebSocketDisconnect,
        # passed in by the route so this module does not import Starlette).
        self._gone: tuple[type[BaseException], ...] = (OSError, RuntimeError, *gone)
        self.bad_frames: Counter[str] = Counter()
        self.frames_in = 0
        self.error_frames = 0  # Telnyx's error events: the first is a warning, the rest debug
        self.close_code: int | None = None  # of the socket, once it is gone
        self.stopped = False  # Telnyx ended the stream with its ``stop`` frame
        # voicekit's server writes a message at once, past the ASGI layers (any other
        # server: None, and every message goes through ``send_text``).
        self._write_now: Callable[[str], bool] | None = self._extensions().get(
            TEXT_WRITER_EXTENSION
        )

    def _extensions(self) -> dict[str, Any]:
        scope = getattr(self.websocket, "scope", None) or {}
        return scope.get("extensions") or {}

    # -- start ---------------------------------------------------------------------------

    async def _next(self) -> str | bytes | None:
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            self._closed = True
            self.close_code = message.get("code")
            return None
        text: str | None = message.get("text")
        if text is not None:
            return text
        data: bytes = message.get("bytes") or b""
        return data

    async def wait_start(self, limit_s: float = 10.0) -> None:
        """Read ``connected`` and ``start``; the call's format comes from ``start``.

        :class:`StreamRejected` when the stream cannot be used: it closed, its ``start``
        is for another call or announces a format voicekit cannot take.
        """
        with anyio.fail_after(limit_s):
            while True:
                raw = await self._next()
                if raw is None:
                    raise StreamRejected("the stream closed before its start frame")
                try:
                    frame = parse_frame(raw, max_bytes=self._max_frame_bytes)
                except BadFrame as exc:
                    if exc.kind == "bad_start":
                        raise StreamRejected(str(exc)) from None
                    self._count(exc)
                    continue
                if isinstance(frame, Connected):
                    continue
                if isinstance(frame, StartFrame):
                    if frame.call_control_id not in (None, self._call_id):
                        raise StreamRejected("start frame for another call")
                    self._in_fmt = frame.format
                    self._call = CallInfo(
                        call_id=self._call_id,
                        from_number=frame.from_number or self._details.get("from"),
                        to_number=frame.to_number or self._details.get("to"),
                        direction=self._details.get("direction", "inbound"),
                        provider_data={
                            "stream_id": frame.stream_id,
                            "client_state": frame.client_state,
                            "custom_parameters": frame.custom_parameters,
                        },
                    )
                    return
                self._count(BadFrame("before_start", type(frame).__name__))

    def _count(self, exc: BadFrame) -> None:
        self.bad_frames[exc.kind] += 1
        if self.bad_frames[exc.kind] == 1:
            logger.warning("call=%s: skipped a bad media frame: %s", self._call_id, exc)
        else:
            logger.debug("call=%s: skipped a bad media frame: %s", self._call_id, exc)

    def _summarise(self) -> None:
        if self.error_frames > 1:
            logger.warning(
                "call=%s: %d Telnyx media error events in all", self._call_id, self.error_frames
            )
        total = sum(self.bad_frames.values())
        if total:
            kinds = ", ".join(f"{k} {n}" for k, n in self.bad_frames.most_common())
            logger.warning(
                "call=%s: skipped %d bad media frames in all (%s)", self._call_id, total, kinds
            )

    @property
    def closed(self) -> bool:
        """The socket is gone (a disconnect was read or a send failed)."""
        return self._closed

    # -- MediaStream --------------------------------------------------------------------------

    @property
    def call(self) -> CallInfo:
        assert self._call is not None, "wait_start() first"
        return self._call

    @property
    def inbound_format(self) -> AudioFormat:
        assert self._in_fmt is not None, "wait_start() first"
        return self._in_fmt

    @property
    def outbound_format(self) -> AudioFormat:
        return self._out_fmt

    async def __aiter__(self) -> AsyncIterator[MediaEvent]:
        # One generator, not a wrapper around another: this runs 50 times a second per call.
        try:
            fmt = self.inbound_format
            swap = self._swap and fmt.encoding == "pcm_s16le"
            block = fmt.block_size
            while True:
                try:
                    raw = await self._next()
                except self._gone as exc:
                    logger.info("call=%s: media socket closed: %s", self._call_id, exc)
                    self._closed = True
                    raw = None
                if raw is None:
                    if self.close_code == 1009:
                        logger.warning(
                            "call=%s: media socket closed (1009): a message exceeded "
                            "[server] max_message_bytes",
                            self._call_id,
                        )
                    yield StreamStopped(
                        f"media stream disconnected (code {self.close_code})",
                        failed=self.close_code in PROTOCOL_ERRORS,
                    )
                    return
                try:
                    frame = parse_frame(raw, max_bytes=self._max_frame_bytes)
                except BadFrame as exc:
                    self._count(exc)
                    continue
                self.frames_in += 1
                if isinstance(frame, MediaFrame):
                    if frame.track != "inbound" or not frame.payload:
                        continue
                    if len(frame.payload) % block:
                        self._count(BadFrame("bad_audio", f"{len(frame.payload)} bytes of {fmt}"))
                        continue
                    yield InboundAudio(_swap16(frame.payload) if swap else frame.payload)
                elif isinstance(frame, MarkFrame):
                    yield MarkReached(frame.name)
                elif isinstance(frame, DtmfFrame):
                    yield Dtmf(frame.digit)
                elif isinstance(frame, StopFrame):
                    self.stopped = True
                    yield StreamStopped("stopped by Telnyx")
                    return
                elif isinstance(frame, StartFrame):  # the stream has started already
                    self._count(BadFrame("repeated_start", "a start frame mid-stream"))
                elif isinstance(frame, ErrorFrame):
                    self.error_frames += 1
                    logger.log(
                        logging.WARNING if self.error_frames == 1 else logging.DEBUG,
                        "call=%s: Telnyx media error %s %s: %s",
                        self._call_id,
                        frame.code,
                        frame.title,
                        frame.detail,
                    )
        finally:
            self._summarise()

    def offer_audio(self, take: Callable[[bytes], bool] | None) -> bool:
        """Inbound audio frames go to ``take`` from the socket's callback (voicekit's own
        server offers that through the scope; any other ASGI server does not)."""
        set_handler = self._extensions().get(TEXT_HANDLER_EXTENSION)
        if set_handler is None:
            return False
        if take is None:
            set_handler(None)
            return True
        fmt = self.inbound_format
        if self._swap and fmt.encoding == "pcm_s16le":
            return False  # big-endian L16 is swapped in __aiter__
        block = fmt.block_size
        limit = self._max_frame_bytes

        def handle(text: str) -> bool:
            # Anything declined here goes through __aiter__, which parses it again and
            # counts or routes it: only a usable caller frame is taken.
            if len(text) > limit:
                return False
            payload = inbound_audio(text)
            if not payload or len(payload) % block or not take(payload):
                return False
            self.frames_in += 1
            return True

        set_handler(handle)
        return True

    async def _send(self, text: str) -> None:
        if self._closed:
            return
        write_now = self._write_now
        if write_now is not None and not self._send_lock.locked() and write_now(text):
            return  # nothing was waiting to go before it
        async with self._send_lock:
            try:
                await self.websocket.send_text(text)
            except self._gone as exc:  # the caller hung up: a normal end, not a failure
                self._closed = True
                logger.info(
                    "call=%s: media send failed, the socket is gone: %r", self._call_id, exc
                )

    async def send_audio(self, data: bytes) -> None:
        if self._swap and self._out_fmt.encoding == "pcm_s16le":
            data = _swap16(data)
        await self._send(media_frame(data))

    async def mark(self, name: str) -> None:
        await self._send(mark_frame(name))

    async def clear(self) -> None:
        await self._send(clear_frame())
