"""The media WebSocket protocol pauses reading only when messages pile up."""

from __future__ import annotations

import asyncio

from voicekit.server.media_socket import HIGH_WATER, MediaWebSocketProtocol


def test_reading_pauses_only_above_the_high_water_mark() -> None:
    protocol = object.__new__(MediaWebSocketProtocol)
    protocol.read_paused = False  # what uvicorn's __init__ does before the queue exists
    assert protocol.read_paused is False
    protocol.queue = asyncio.Queue()
    # Few messages waiting: uvicorn sees "already paused", so it neither pauses nor
    # (really) resumes: no epoll churn per frame.
    assert protocol.read_paused is True
    for _ in range(HIGH_WATER):
        protocol.queue.put_nowait({"type": "websocket.receive", "text": "x"})
    assert protocol.read_paused is False  # now uvicorn pauses the transport...
    protocol.read_paused = True
    assert protocol.read_paused is True  # ...and knows it did, until it resumes
    protocol.read_paused = False
    assert protocol.read_paused is False


def test_every_server_connection_has_nagle_off_whatever_socket_it_came_from() -> None:
    """A listening socket made with protocol 0 (uvicorn --workers, systemd sockets) gives
    accepted connections on which asyncio leaves Nagle on."""
    import socket

    from voicekit.server._uvicorn import no_delay

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()

    class Transport:
        def get_extra_info(self, name: str) -> object:
            return accepted if name == "socket" else None

    try:
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        no_delay(Transport())  # type: ignore[arg-type]
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        for s in (client, accepted, listener):
            s.close()
