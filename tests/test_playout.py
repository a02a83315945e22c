"""Playout: frames paced at real time with a lead, and how late each one went out."""

from __future__ import annotations

import anyio
import pytest

from tests.session_helpers import anyio_backend  # noqa: F401  (trio, virtual clock)
from voicekit.audio import ULAW_8K
from voicekit.session.playout import Playout
from voicekit.testing import FakeMediaStream

pytestmark = pytest.mark.anyio

FRAME = b"\xff" * 160  # 20 ms of mu-law


class StallingMedia(FakeMediaStream):
    """Records send times; the ``stall_at``-th send blocks for ``stall_s`` (a busy process)."""

    def __init__(self, stall_at: int | None = None, stall_s: float = 0.0) -> None:
        super().__init__(inbound_format=ULAW_8K)
        self.sent_at: list[float] = []
        self.events: list[str] = []  # "audio:<bytes>" and "mark:<name>", in order
        self.stall_at, self.stall_s = stall_at, stall_s

    async def send_audio(self, data: bytes) -> None:
        if len(self.sent_at) == self.stall_at:
            await anyio.sleep(self.stall_s)
        self.sent_at.append(anyio.current_time())
        self.events.append(f"audio:{len(data)}")
        await super().send_audio(data)

    async def mark(self, name: str) -> None:
        self.events.append(f"mark:{name}")
        await super().mark(name)


async def play(media: StallingMedia, frames: int) -> list[float]:
    """Lateness of each of ``frames`` frames, sent one a message."""
    lateness: list[float] = []
    playout = Playout(
        media,
        ULAW_8K,
        message_ms=20,
        on_frame_sent=lambda owner, late, n: lateness.extend([late] * n),
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(playout.run)
        for _ in range(frames):
            playout.enqueue_frame(1, FRAME)
        while len(lateness) < frames:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    return lateness


async def test_frames_go_out_with_the_lead_then_at_real_time_and_on_time() -> None:
    media = StallingMedia()
    start = anyio.current_time()
    lateness = await play(media, 30)
    offsets = [round((t - start) * 1000) for t in media.sent_at]
    assert offsets[:7] == [0] * 7  # 120 ms of lead go at once
    assert offsets[7:] == [20 * k for k in range(1, 24)]
    assert lateness == [0.0] * 30


async def test_a_stall_longer_than_the_lead_is_one_underrun() -> None:
    media = StallingMedia(stall_at=10, stall_s=0.2)
    lateness = await play(media, 30)
    late_ms = [round(x * 1000) for x in lateness]
    # Sending frame 10 (due at 80 ms) took 200 ms, so frame 11, due at 100 ms, went out at
    # 280 ms: 180 ms late, more than the 120 ms the far end had buffered. It ran dry once.
    assert late_ms[:11] == [0] * 11
    assert late_ms[11] == 180
    assert [i for i, ms in enumerate(late_ms) if ms > 120] == [11]
    # Playback restarted at 280 ms: the next frames go at once to rebuild the lead (each
    # 20 ms less behind its schedule), then pacing is on time again.
    assert late_ms[12:17] == [100, 80, 60, 40, 20]
    assert late_ms[17:] == [0] * 13


async def test_queued_frames_go_out_three_a_message_and_keep_the_lead() -> None:
    media = StallingMedia()
    sent: list[int] = []
    playout = Playout(
        media, ULAW_8K, on_frame_sent=lambda owner, late, n: sent.append(n)
    )  # message_ms: 60 by default
    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(playout.run)
        for _ in range(30):
            playout.enqueue_frame(1, FRAME)
        while sum(sent) < 30:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert sent == [3] * 10
    assert media.events == ["audio:480"] * 10
    offsets = [round((t - start) * 1000) for t in media.sent_at]
    # 120 ms of lead go at once (two messages, then the third when the buffer is 120 ms),
    # then a message each time the far end is back down to the lead: never below it.
    assert offsets == [0, 0, 0, 60, 120, 180, 240, 300, 360, 420]


async def test_a_message_stops_at_a_mark_and_at_another_reply() -> None:
    media = StallingMedia()
    sent: list[tuple[int, int]] = []
    playout = Playout(media, ULAW_8K, on_frame_sent=lambda owner, late, n: sent.append((owner, n)))
    playout.enqueue_frame(1, FRAME)
    playout.enqueue_frame(1, FRAME)
    playout.enqueue_mark(1, "word-1")
    playout.enqueue_frame(1, FRAME)
    playout.enqueue_frame(2, FRAME)
    playout.enqueue_frame(2, FRAME)
    async with anyio.create_task_group() as tg:
        tg.start_soon(playout.run)
        while sum(n for _, n in sent) < 5:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert sent == [(1, 2), (1, 1), (2, 2)]
    assert media.events == ["audio:320", "mark:word-1", "audio:160", "audio:320"]


async def test_only_frames_already_queued_are_joined() -> None:
    media = StallingMedia()
    sent: list[int] = []
    playout = Playout(media, ULAW_8K, on_frame_sent=lambda owner, late, n: sent.append(n))
    async with anyio.create_task_group() as tg:
        tg.start_soon(playout.run)
        playout.enqueue_frame(1, FRAME)  # the first frame of a reply waits for no other
        while not sent:  # noqa: ASYNC110
            await anyio.sleep(0.001)
        playout.enqueue_frame(1, FRAME)
        playout.enqueue_frame(1, FRAME)
        while sum(sent) < 3:  # noqa: ASYNC110
            await anyio.sleep(0.001)
        tg.cancel_scope.cancel()
    assert sent == [1, 2]


async def test_a_message_holds_at_most_message_ms_of_audio_and_at_least_one_item() -> None:
    media = StallingMedia()
    playout = Playout(media, ULAW_8K, message_ms=60, on_frame_sent=lambda *_: None)
    chunk = b"\xff" * 800  # 100 ms: more than a message, so it goes alone
    async with anyio.create_task_group() as tg:
        tg.start_soon(playout.run)
        playout.enqueue_frame(1, chunk)
        playout.enqueue_frame(1, FRAME)
        playout.enqueue_frame(1, FRAME)
        playout.enqueue_frame(1, FRAME)
        playout.enqueue_frame(1, FRAME)
        while len(media.events) < 3:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert media.events == ["audio:800", "audio:480", "audio:160"]
