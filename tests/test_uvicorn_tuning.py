"""The media WebSocket protocol pauses reading only when messages pile up."""

from __future__ import annotations

import asyncio

from voicekit.server._uvicorn import HIGH_WATER, MediaWebSocketProtocol


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
