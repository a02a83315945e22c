"""uvicorn tuned for voicekit: signals left to voicekit, reading paused only under load,
and no connection held open by a client that never finishes its request.

- uvicorn's ``serve()`` installs its own SIGINT/SIGTERM handlers; voicekit drains calls on
  SIGTERM itself (and emulators inside tests must not touch signals at all).
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
- uvicorn has no timeout for reading a request: a client that opens a connection and
  sends half a request line, or trickles a body, holds a socket and a file descriptor
  forever (200 of them were held over 60 s). :func:`http_protocol` gives each request a
  deadline: its headers and body must have arrived ``request_timeout_s`` after the
  connection opened or the previous response ended, or the connection is closed (408).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from typing import Any, cast

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

try:  # websockets' C helper, as its own parser uses
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover  (a build without the C extension)
    from websockets.utils import apply_mask

__all__ = [
    "HIGH_WATER",
    "MAX_HEADER_BYTES",
    "MediaWebSocketProtocol",
    "Server",
    "http_protocol",
    "server_config",
]

logger = logging.getLogger(__name__)

HIGH_WATER = 32


class Server(uvicorn.Server):
    """uvicorn's server, leaving signals to voicekit.

    ``fast_exit`` (for servers inside a test process, such as the emulators) stops at
    once when ``should_exit`` is set, instead of at uvicorn's next 100 ms tick, and a
    forced exit skips uvicorn's 100 ms grace: a test that starts and stops four servers
    would otherwise spend most of a second doing nothing.
    """

    fast_exit = False
    _exit_event: asyncio.Event | None = None
    _should_exit = False

    @property
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        if value and self._exit_event is not None:
            self._exit_event.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def main_loop(self) -> None:
        if not self.fast_exit:
            await super().main_loop()
            return
        self._exit_event = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter += 1
            with contextlib.suppress(TimeoutError):  # a tick a second keeps the Date header
                await asyncio.wait_for(self._exit_event.wait(), timeout=1.0)

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        if not (self.fast_exit and self.force_exit):
            await super().shutdown(sockets)
            return
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        for server in self.servers:
            await server.wait_closed()


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
    - At most ``CONTROL_FRAMES_PER_S`` pings and pongs a second (Telnyx sends a few a
      minute): a flood of empty control frames kept a core busy with no message ever
      reaching the app, so no backpressure applied.
    - Frames are cut from the stream here and data frames delivered directly
      (:meth:`_cut_frames`).
    """

    handshake_timeout_s: float = 10.0
    _really_paused = False
    _framing = False  # data_received cuts frames (the connection is open, websockets idle)
    _partial_needed = 0  # the bytes that frame needs in all (0: its header is not all here)
    _framing_refused = False  # frame bytes reached websockets before the connection opened
    _handshake_timer: asyncio.TimerHandle | None = None
    _control_second = -1  # the loop's second the control frames below were counted in
    _control_frames = 0

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
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        super().connection_lost(exc)

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        if not self.handshake_complete and not self.transport.is_closing():
            logger.info("closed a WebSocket whose handshake did not finish in time")
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._receive(data)
        if (
            self.transport.get_write_buffer_size() > WRITE_BACKLOG_BYTES
            and not self.transport.is_closing()
        ):
            self._drop("it does not read what it is sent")

    def _drop(self, why: str) -> None:
        logger.warning("dropped a media WebSocket: %s", why)
        self.transport.abort()

    def handle_ping(self) -> None:
        if self._control_frame_allowed():
            super().handle_ping()

    def handle_pong(self, event: Any) -> None:
        if self._control_frame_allowed():
            super().handle_pong(event)

    def _control_frame_allowed(self) -> bool:
        second = int(self.loop.time())
        if second != self._control_second:
            self._control_second, self._control_frames = second, 0
        self._control_frames += 1
        if self._control_frames <= CONTROL_FRAMES_PER_S:
            return True
        if not self.transport.is_closing():
            self._drop(f"more than {CONTROL_FRAMES_PER_S} pings and pongs in a second")
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
        if self.handshake_initiated and self.conn.state is not State.OPEN:
            # Frames before the app accepted: websockets may stop inside one, with nothing
            # left in its buffer to show it. This connection is parsed by websockets alone.
            self._framing_refused = True
        super().data_received(data)
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
            and not self._framing_refused
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
            if conn.parser_exc is not None or conn.state is not State.OPEN or self.close_sent:
                break
            first = data[pos]
            second = data[pos + 1] if end - pos > 1 else 0x80  # taken as masked until here
            if not second & 0x80 or (first & 0x0F) not in _OPCODES:
                break  # unmasked or an unknown opcode: websockets refuses it from its header
            room = (
                limit if limit is None or conn.current_size is None else limit - conn.current_size
            )
            stop = self._frame_end(data, pos, room)
            if stop is None or stop > end:  # its header or its payload is still arriving
                self._partial = bytearray(data[pos:])
                self._partial_needed = 0 if stop is None else stop - pos
                return
            if stop < 0:
                break  # over the message limit: websockets refuses it from its header
            if (
                (first == 0x81 or first == 0x82)  # FIN, no RSV, text or binary
                and (second & 0x7F) != 127  # a 7- or 16-bit length
                and conn.current_size is None
            ):
                head = pos + (4 if (second & 0x7F) == 126 else 2)
                self.curr_msg_data_type = "text" if first == 0x81 else "bytes"
                self.frames = [apply_mask(data[head + 4 : stop], data[head : head + 4])]
                self.send_receive_event_to_app()
            else:
                self._to_websockets(data[pos:stop])
            pos = stop
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

    def _to_websockets(self, data: bytes) -> None:
        super().data_received(data)

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type != "text" or self.close_sent:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        try:
            message: dict[str, Any] = {"type": "websocket.receive", "text": data.decode()}
        except UnicodeDecodeError:
            message = {"type": "websocket.receive", "bytes": data}
        self.queue.put_nowait(message)  # type: ignore[arg-type]
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()


CLOSE_TIMEOUT_S = 2.0
WRITE_BACKLOG_BYTES = 1 << 20  # paced audio keeps a few KiB queued; a MiB is a peer not reading
CONTROL_FRAMES_PER_S = 50
_OPCODES = frozenset({0x0, 0x1, 0x2, 0x8, 0x9, 0xA})  # continuation, data, control


_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\n"
    b"content-length: 17\r\nconnection: close\r\n\r\nrequest timed out"
)


MAX_HEADER_BYTES = 64 * 1024  # a request line and headers bigger than this are refused
_TOO_LARGE_RESPONSE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
    b"content-length: 17\r\nconnection: close\r\n\r\nheaders too large"
)


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off for a TCP connection. asyncio does so only when the
    listening socket was made with protocol ``IPPROTO_TCP``; one made with protocol 0 (as
    uvicorn's ``--workers`` and many process managers hand over) leaves it on, and then
    each 20 ms media frame after the first waits for the peer's delayed ACK."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _RequestDeadline:
    """Mixed into uvicorn's HTTP protocols (both keep ``transport``, ``loop`` and ``cycle``).

    One timer per connection, armed when it opens and after every response: when it
    fires, a request whose headers and body have all arrived since is left alone (the app
    is working on it, or the connection became a WebSocket); anything else (nothing sent,
    half a request, a trickled body, or an idle keep-alive trickling bytes) is closed.
    Bytes that arrive before a request's headers are complete are counted too: past
    ``MAX_HEADER_BYTES`` the connection is answered 431 and closed (httptools has no limit
    of its own, and one endless header line would otherwise grow without bound).
    """

    request_timeout_s: float = 10.0
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any
    _deadline: asyncio.TimerHandle | None = None
    _armed_for: Any = None
    _header_bytes = 0

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._armed_for = self.cycle
        self._header_bytes = 0
        self._deadline = self.loop.call_later(self.request_timeout_s, self._expired)

    def _in_headers(self) -> bool:
        return self.cycle is self._armed_for and self.transport.get_protocol() is cast(Any, self)

    def _expired(self) -> None:
        self._deadline = None
        transport = self.transport
        if transport.is_closing() or transport.get_protocol() is not cast(Any, self):
            return  # closed already, or upgraded to a WebSocket
        cycle = self.cycle
        if cycle is not None and cycle is not self._armed_for and not cycle.more_body:
            return  # a whole request arrived in time; the app's time is its own
        peer = transport.get_extra_info("peername")
        logger.info(
            "closed a connection from %s: no complete request within %.0f s",
            peer[0] if peer else "?",
            self.request_timeout_s,
        )
        if cycle is None or cycle is self._armed_for or not cycle.response_started:
            transport.write(_TIMEOUT_RESPONSE)
        transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        no_delay(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._in_headers():
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                peer = self.transport.get_extra_info("peername")
                logger.info(
                    "closed a connection from %s: request headers over %d bytes",
                    peer[0] if peer else "?",
                    MAX_HEADER_BYTES,
                )
                self.transport.write(_TOO_LARGE_RESPONSE)
                self.transport.close()
                return
        super().data_received(data)  # type: ignore[misc]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._arm()


def http_protocol(request_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools when installed, else h11) with request deadlines."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # httptools is optional
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]
    return type(
        "DeadlineHTTPProtocol",
        (_RequestDeadline, Base),
        {"request_timeout_s": request_timeout_s},
    )


def server_config(app: Any, settings: Any, *, host: str, port: int, **options: Any) -> Any:
    """The uvicorn configuration every voicekit server runs with: the protocols above and
    the limits of ``[server]`` (``settings`` is a ``ServerSettings``)."""
    options.setdefault("lifespan", "on")
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=http_protocol(settings.request_timeout_s),
        ws=type(
            "TimedMediaWebSocketProtocol",
            (MediaWebSocketProtocol,),
            {"handshake_timeout_s": settings.request_timeout_s},
        ),
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=False,  # media frames are audio: compression only costs CPU
        timeout_keep_alive=settings.keep_alive_timeout_s,
        **options,
    )
