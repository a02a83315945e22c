"""The server's WebSocket protocol for media streams: uvicorn's sans-io protocol, made
cheap per frame and hardened for clients from the internet.

- uvicorn's WebSocket protocol pauses reading after every message and resumes when the
  app takes it: two epoll calls per 20 ms media frame on every call. ``MediaWebSocketProtocol``
  pauses only when ``HIGH_WATER`` messages are waiting, which keeps backpressure against
  a flooding client without the per-frame churn.
- A media socket receives 50 small messages a second per call, and websockets' general
  parser (generators, a ``Frame`` object, an event list) costs more per message than the
  rest of the inbound path. :meth:`MediaWebSocketProtocol.data_received` cuts the byte
  stream into whole frames itself, delivers the common case (a masked, unfragmented text
  or binary frame) directly and hands every other frame, whole, to websockets, so every
  rule websockets enforces still applies and its parser is always between frames.
- Each message the app sends would go through Starlette's ``WebSocket.send``, its
  exception wrapper, uvicorn's ``send`` and websockets' framing: several awaits and
  objects for a 60 ms media message. :meth:`MediaWebSocketProtocol.write_text_now` frames
  a text message itself and writes it at once, offered to the app through the scope.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from voicekit.lograte import FoldedWarning
from voicekit.telephony import TEXT_HANDLER_EXTENSION, TEXT_WRITER_EXTENSION
from voicekit.ws_frames import apply_mask, server_frame

__all__ = [
    "CLOSE_TIMEOUT_S",
    "CONTROL_FRAMES_PER_S",
    "HIGH_WATER",
    "WRITE_BACKLOG_BYTES",
    "MediaWebSocketProtocol",
]

logger = logging.getLogger(__name__)
_DROPS = FoldedWarning(logger)  # a client that reconnects to be dropped again cannot flood

HIGH_WATER = 32  # messages waiting for the app before reading pauses
CLOSE_TIMEOUT_S = 2.0
WRITE_BACKLOG_BYTES = 1 << 20  # paced audio keeps a few KiB queued; a MiB is a peer not reading
CONTROL_FRAMES_PER_S = 50
_OPCODES = frozenset({0x0, 0x1, 0x2, 0x8, 0x9, 0xA})  # continuation, data, control


class MediaWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-io WebSocket protocol, hardened for media streams from the internet.

    - Reads pause only above ``HIGH_WATER`` queued messages. uvicorn pauses when
      ``read_paused`` is false and resumes when it is true and the queue is empty;
      reporting "already paused" while few messages wait skips the pause, and the
      matching resume is then a no-op on the transport.
    - The opening handshake must finish within ``handshake_timeout_s``, and a handshake
      that websockets refuses (a header line too long: 431) is answered and closed;
      uvicorn would leave that socket open for ever.
    - A text message that is not UTF-8 reaches the app as bytes, so the media route
      skips and counts it as it does any malformed frame, instead of uvicorn logging a
      traceback and ending the call with 1007.
    - The peer has ``CLOSE_TIMEOUT_S`` to answer our close frame, not uvicorn's 10 s.
    - A peer that does not read what it is sent is dropped once ``WRITE_BACKLOG_BYTES``
      wait to go out: websockets answers every ping with a pong, and a client that pings
      without reading (before it has even shown a token) grew the server by 1.5 GB in
      40 s, while a close waiting for that buffer to drain never went out.
    - At most ``CONTROL_FRAMES_PER_S`` pings, pongs and message fragments a second
      (Telnyx sends a few pings a minute and no fragments): a flood of empty control
      frames, or of empty continuation frames of a message that never ends, kept a core
      busy with no message ever reaching the app, so no backpressure applied.
    - Bytes after the upgrade request and before its answer drop the connection (a client
      must wait for the answer): websockets would parse them a whole read at a time.
    - Frames are cut from the stream here and data frames delivered directly
      (:meth:`_cut_frames`).
    - The app may set a handler for text messages through the scope's
      ``TEXT_HANDLER_EXTENSION`` (a function taking the handler, or None): each text
      message is offered to it from this callback, with no queue and no task switch,
      while no earlier message is waiting in the queue, so the order is kept. A message
      it declines (False) is queued as usual. A handler that raises is logged and
      dropped, and the message is queued.
    - The scope's ``TEXT_WRITER_EXTENSION`` is :meth:`write_text_now`.
    """

    handshake_timeout_s: float = 10.0
    _really_paused = False
    _framing = False  # data_received cuts frames (the connection is open, websockets idle)
    _partial_needed = 0  # the bytes that frame needs in all (0: its header is not all here)
    _handshake_timer: asyncio.TimerHandle | None = None
    _control_second = -1  # the loop's second the control frames below were counted in
    _control_frames = 0
    _text_handler: Callable[[str], bool] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = CLOSE_TIMEOUT_S
        self._partial = bytearray()  # the start of a frame still arriving, given to no one

    @property
    def read_paused(self) -> bool:
        queue = getattr(self, "queue", None)
        return self._really_paused or (queue is not None and queue.qsize() < HIGH_WATER)

    @read_paused.setter
    def read_paused(self, value: bool) -> None:
        self._really_paused = value

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._handshake_timer = self.loop.call_later(
            self.handshake_timeout_s, self._handshake_expired
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._text_handler = None  # it holds the call's STT stream; the scope holds us
        scope = getattr(self, "scope", None)
        if scope is not None:  # both hold this protocol, which holds the scope
            scope.get("extensions", {}).pop(TEXT_HANDLER_EXTENSION, None)
            scope.get("extensions", {}).pop(TEXT_WRITER_EXTENSION, None)
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """The server is stopping. uvicorn sends a close frame unless the app sent one; but
        when the peer closed first, websockets has answered that close already and the
        connection is closing, so a second close raised ``InvalidState`` out of the
        server's shutdown (the socket is closed, and the app told, by the close itself)."""
        if not self.close_sent and self.conn.state in (State.CLOSING, State.CLOSED):
            self.stop_keepalive()
            self.transport.close()
            return
        super().shutdown()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # not set when the handshake was refused
        if scope is not None:
            extensions = scope.setdefault("extensions", {})
            extensions[TEXT_HANDLER_EXTENSION] = self._set_text_handler
            extensions[TEXT_WRITER_EXTENSION] = self.write_text_now

    def _set_text_handler(self, handler: Callable[[str], bool] | None) -> None:
        self._text_handler = handler

    def write_text_now(self, text: str) -> bool:
        """Write ``text`` as one text message now, as ``send`` would; False, with nothing
        written, where ``send`` would wait or fail (the handshake not answered, a close
        under way, the peer gone, the write buffer above its high-water mark), so the
        app then sends it the usual way and the order of its messages is kept."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(server_frame(0x1, text.encode()))
        return True

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        if not self.handshake_complete and not self.transport.is_closing():
            logger.info("closed a WebSocket whose handshake did not finish in time")
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._receive(data)
        if self.transport.get_write_buffer_size() > WRITE_BACKLOG_BYTES:
            self._drop("it does not read what it is sent")

    def _drop(self, why: str) -> None:
        if not self.transport.is_closing():
            _DROPS.warning("dropped a media WebSocket: %s", why)
            self.transport.abort()

    def handle_ping(self) -> None:
        if self._control_frame_allowed():
            super().handle_ping()

    def handle_pong(self, event: Any) -> None:
        if self._control_frame_allowed():
            super().handle_pong(event)

    def handle_cont(self, event: Any) -> None:
        if self._control_frame_allowed():
            super().handle_cont(event)

    def _control_frame_allowed(self) -> bool:
        """Pings, pongs and message fragments: a few a minute from Telnyx, and each one
        handled without a message reaching the app, so without backpressure."""
        second = int(self.loop.time())
        if second != self._control_second:
            self._control_second, self._control_frames = second, 0
        self._control_frames += 1
        if self._control_frames <= CONTROL_FRAMES_PER_S:
            return True
        self._drop(f"more than {CONTROL_FRAMES_PER_S} pings, pongs and fragments in a second")
        return False

    def _receive(self, data: bytes) -> None:
        if not self._framing and self._parser_idle():
            self._framing = True
        if self._framing:
            if self._partial:
                self._partial += data  # in place: a frame may trickle in a byte at a time
                if len(self._partial) < self._partial_needed:
                    return
                data, self._partial = bytes(self._partial), bytearray()
            self._cut_frames(data)
            return
        if self.handshake_initiated and self.conn.state is State.CONNECTING:
            # Bytes after the upgrade request, before it was answered: a client must wait
            # for the answer (RFC 6455, 4.1). Parsed here they would be websockets' alone,
            # a whole read at a time, past any per-frame budget. (Bytes in the request's
            # own read never get here: uvicorn's HTTP side drops them.)
            self._drop("it sent frames before its handshake was answered")
            return
        super().data_received(data)  # the upgrade request, rebuilt by uvicorn's HTTP side
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            # websockets refused the request itself (a line too long: 414/431) and queued
            # its answer; uvicorn neither writes it nor closes the socket.
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.handshake_complete = True
            self.transport.close()

    def _parser_idle(self) -> bool:
        """websockets holds no bytes of an open connection: what comes next starts a frame."""
        conn = self.conn
        return (
            conn.state is State.OPEN
            and conn.parser_exc is None
            and not conn.reader.buffer
            and not conn.reader.eof
            and not self.close_sent
        )

    def _cut_frames(self, data: bytes) -> None:
        """Deliver the whole frames in ``data``; keep the start of one still arriving.

        A masked, unfragmented text or binary frame (every media frame) goes to the app
        directly. Any other frame (control, fragment, reserved bits, unmasked, a 64-bit
        length) is handed whole to websockets, which applies its rules to it and is then
        between frames again. A frame longer than the connection's message limit is handed
        over as soon as its header is here, to be refused (1009) without being buffered;
        so at most one message's worth of bytes is ever held here. Once websockets has
        failed or the connection is closing, every byte goes to websockets.
        """
        conn = self.conn
        limit = conn.max_message_size
        end = len(data)
        pos = 0
        while pos < end:
            if self.transport.is_closing():
                return  # dropped: the rest of this read is not worth parsing
            if conn.parser_exc is not None or conn.state is not State.OPEN or self.close_sent:
                break
            first = data[pos]
            second = data[pos + 1] if end - pos > 1 else 0x80  # taken as masked until here
            if not second & 0x80 or (first & 0x0F) not in _OPCODES:
                break  # unmasked or an unknown opcode: websockets refuses it from its header
            size = second & 0x7F
            if (
                (first == 0x81 or first == 0x82)  # FIN, no RSV, text or binary
                and size != 127  # a 7- or 16-bit length
                and end - pos > 1
                and conn.current_size is None  # not inside a fragmented message
            ):  # every media frame: read here, in line
                head = pos + 2
                if size == 126:
                    if end - head < 2:
                        self._keep(data, pos, 0)
                        return
                    size = (data[head] << 8) | data[head + 1]
                    head += 2
                if limit is not None and size > limit:
                    break  # over the message limit: websockets refuses it from its header
                stop = head + 4 + size
                if stop > end:
                    self._keep(data, pos, stop - pos)
                    return
                payload = apply_mask(data[head + 4 : stop], data[head : head + 4])
                pos = stop
                if first == 0x81:
                    self._text_message(payload)
                else:
                    self.curr_msg_data_type = "bytes"
                    self.frames = [payload]
                    self.send_receive_event_to_app()
                continue
            room = (
                limit if limit is None or conn.current_size is None else limit - conn.current_size
            )
            whole = self._frame_end(data, pos, room)
            if whole is None or whole > end:  # its header or its payload is still arriving
                self._keep(data, pos, 0 if whole is None else whole - pos)
                return
            if whole < 0:
                break  # over the message limit: websockets refuses it from its header
            self._to_websockets(data[pos:whole])
            pos = whole
        if pos < end:
            self._framing = False  # websockets takes the rest, and everything after it
            self._to_websockets(data[pos:])

    @staticmethod
    def _frame_end(data: bytes, pos: int, limit: int | None) -> int | None:
        """Where the frame starting at ``pos`` ends (past ``data``'s end if its payload is
        still arriving); None if its header is not all here yet, -1 if its length is over
        ``limit``."""
        end = len(data)
        if end - pos < 2:
            return None
        second = data[pos + 1]
        length = second & 0x7F
        head = pos + 2
        if length == 126:
            if end - head < 2:
                return None
            length = (data[head] << 8) | data[head + 1]
            head += 2
        elif length == 127:
            if end - head < 8:
                return None
            length = int.from_bytes(data[head : head + 8], "big")
            head += 8
        if limit is not None and length > limit:
            return -1
        return head + (4 if second & 0x80 else 0) + length

    def _keep(self, data: bytes, pos: int, needed: int) -> None:
        """Hold the frame starting at ``pos``, still arriving: ``needed`` bytes in all
        (0 while its header is not all here)."""
        self._partial = bytearray(data[pos:])
        self._partial_needed = needed

    def _to_websockets(self, data: bytes) -> None:
        super().data_received(data)

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type != "text" or self.close_sent:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        self._text_message(data)

    def _text_message(self, data: bytes) -> None:
        """A whole text message: to the app's handler, else the queue (as bytes if it is
        not UTF-8, for the app to skip and count)."""
        try:
            text = data.decode()
        except UnicodeDecodeError:
            message: dict[str, Any] = {"type": "websocket.receive", "bytes": data}
        else:
            if self._offered(text):
                return
            message = {"type": "websocket.receive", "text": text}
        self.queue.put_nowait(message)  # type: ignore[arg-type]
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def _offered(self, text: str) -> bool:
        """Whether the app's text handler took ``text`` (never ahead of a queued message)."""
        handler = self._text_handler
        if handler is None or not self.queue.empty():
            return False
        try:
            return handler(text)
        except Exception:
            self._text_handler = None
            logger.exception("a media text handler failed; this socket's messages are queued")
            return False
