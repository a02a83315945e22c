"""uvicorn tuned for voicekit: signals left to voicekit, media sockets read by
:mod:`voicekit.server.media_socket`, and no connection held open by a client that never
finishes its request.

- uvicorn's ``serve()`` installs its own SIGINT/SIGTERM handlers; voicekit drains calls on
  SIGTERM itself (and emulators inside tests must not touch signals at all).
- uvicorn has no timeout for reading a request: a client that opens a connection and
  sends half a request line, or trickles a body, holds a socket and a file descriptor
  forever (200 of them were held over 60 s). :func:`http_protocol` gives each request a
  deadline: its headers and body must have arrived ``request_timeout_s`` after the
  connection opened or the previous response ended, or the connection is closed (408).
- uvicorn parses every pipelined request in a read at once and queues each one, with its
  scope, until the requests before it are answered; a client that sent 60 KB of
  ``GET /healthz`` (1,764 requests) on each of 100 connections and read nothing grew a
  server by 330 MB a round, all of it reference cycles. At most ``MAX_PIPELINED``
  requests may wait on a connection; more closes it, and a closed connection lets go of
  what was queued at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from typing import Any, cast

import uvicorn

from voicekit.lograte import FoldedRecords, FoldedWarning
from voicekit.server.media_socket import MediaWebSocketProtocol

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_PIPELINED",
    "Server",
    "http_protocol",
    "server_config",
]

logger = logging.getLogger(__name__)
_pipelining = FoldedWarning(logger)


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


_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\n"
    b"content-length: 17\r\nconnection: close\r\n\r\nrequest timed out"
)


MAX_HEADER_BYTES = 64 * 1024  # a request line and headers bigger than this are refused
_TOO_LARGE_RESPONSE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
    b"content-length: 17\r\nconnection: close\r\n\r\nheaders too large"
)


MAX_PIPELINED = 16  # requests queued behind the one being answered, on one connection


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
    With httptools, every byte that is not body (request lines, headers, and the trailers
    a chunked body may end with) is counted too: past ``MAX_HEADER_BYTES`` since the last
    response the connection is answered 431 and closed. httptools has no limit of its own:
    one endless header line grew a server to 859 MB, and endless trailer lines (which
    uvicorn adds to the request's headers at 25-30 times their size on the wire) to 2.6 GB
    in 8 s. Body bytes are the body limit's business, however the reads split them. h11
    has its own limit (uvicorn's ``h11_max_incomplete_event_size``).
    """

    request_timeout_s: float = 10.0
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any
    _deadline: asyncio.TimerHandle | None = None
    _armed_for: Any = None
    _counts_headers = False  # httptools: counted here; h11: by h11
    _header_bytes = 0  # bytes other than body since the last response
    _body_bytes = 0

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._armed_for = self.cycle
        self._header_bytes = 0
        self._deadline = self.loop.call_later(self.request_timeout_s, self._expired)

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

    def on_body(self, body: bytes) -> None:  # httptools' callback (h11 has none)
        self._body_bytes += len(body)
        super().on_body(body)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        body_before = self._body_bytes
        super().data_received(data)  # type: ignore[misc]
        if self.transport.get_protocol() is not cast(Any, self) or self.transport.is_closing():
            return  # upgraded to a WebSocket, or refused by the parser
        if self._counts_headers:
            self._header_bytes += len(data) - (self._body_bytes - body_before)
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
        queued: Any = getattr(self, "pipeline", None)  # httptools' (h11 reads one at a time)
        if queued and len(queued) > MAX_PIPELINED and not self.transport.is_closing():
            peer = self.transport.get_extra_info("peername")
            _pipelining.warning(
                "closed a connection from %s: %d pipelined requests waiting (at most %d)",
                peer[0] if peer else "?",
                len(queued),
                MAX_PIPELINED,
            )
            queued.clear()
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]
        # Requests still queued would never be answered; each one refers to this protocol
        # (its response callback) and this protocol to the queue: a cycle only a full
        # collection frees, and voicekit serve runs those only when callers cannot hear it.
        queued = getattr(self, "pipeline", None)
        if queued:
            queued.clear()

    def handle_websocket_upgrade(self, *args: Any) -> None:
        # The connection is the WebSocket protocol's from here (it has its own handshake
        # deadline), and this protocol never hears of it again: a timer left armed kept
        # every upgraded connection's HTTP side alive for request_timeout_s.
        self._disarm()
        super().handle_websocket_upgrade(*args)  # type: ignore[misc]

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

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
        {
            "request_timeout_s": request_timeout_s,
            "_counts_headers": hasattr(Base, "on_body"),  # httptools reports body bytes
        },
    )


def server_config(app: Any, settings: Any, *, host: str, port: int, **options: Any) -> Any:
    """The uvicorn configuration every voicekit server runs with: the protocols above and
    the limits of ``[server]`` (``settings`` is a ``ServerSettings``)."""
    options.setdefault("lifespan", "on")
    config = uvicorn.Config(
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
    fold_uvicorn_warnings()
    return config


# uvicorn's own warnings about what a client sent: anyone can repeat them at will.
UVICORN_CLIENT_WARNINGS = frozenset(
    {
        "Invalid HTTP request received.",
        "Unsupported upgrade request.",
        "No supported WebSocket library detected. Please use \"pip install 'uvicorn[standard]'\", "
        "or install 'websockets' or 'wsproto' manually.",
        "Exceeded concurrency limit.",
    }
)


def fold_uvicorn_warnings() -> None:
    """Fold uvicorn's warnings about a client's bytes (``voicekit.lograte``): 3,000
    malformed request lines wrote 3,000 lines at the default verbosity."""
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, FoldedRecords) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(FoldedRecords(UVICORN_CLIENT_WARNINGS))
