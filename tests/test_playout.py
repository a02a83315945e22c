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
        self.stall_at, self.stall_s = stall_at, stall_s

    async def send_audio(self, data: bytes) -> None:
        if len(self.sent_at) == self.stall_at:
            await anyio.sleep(self.stall_s)
        self.sent_at.append(anyio.current_time())
        await super().send_audio(data)


async def play(media: StallingMedia, frames: int) -> list[float]:
    lateness: list[float] = []
    playout = Playout(media, ULAW_8K, on_frame_sent=lambda owner, late: lateness.append(late))
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
