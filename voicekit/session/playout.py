"""Paced outbound audio: 20 ms frames sent at real-time speed with a small lead.

Sending everything at once would queue seconds of audio at the far end, where barge-in
cannot reach it quickly and where "sent" says nothing about "heard". Playout keeps only
``lead_ms`` of audio ahead of real time: the first frames go out at once, then more each
time the far end's buffer falls back to the lead. Marks are interleaved with the frames,
so the far end reports when the audio before each mark has played.

Each media message carries up to ``message_ms`` of the frames already queued (60 ms by
default, three frames), never across a mark or into another reply. Every message costs
the server a WebSocket frame, a JSON envelope and a write system call whatever its size,
so three frames a message is a third of the per-frame work that bounds how many calls a
process carries. Grouping never lets the far end's buffer fall below ``lead_ms``: in
steady playback it holds between the lead and the lead plus one message (at a reply's
start it fills from empty, and a TTS slower than real time drains it: that is what
lateness below reports). A barge-in clears it either way.

Every frame is due when the far end's buffer falls to ``lead_ms``. How late it actually
went out (measured from when it was due, or from when it was queued if the audio arrived
after that) is reported with each frame: lateness beyond ``lead_ms`` means the far end ran
dry and the caller heard a gap that this process, not the TTS, caused.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from voicekit.audio import AudioFormat
from voicekit.clock import loop_clock
from voicekit.telephony import MediaStream

__all__ = ["Playout"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Item:
    generation: int
    owner: int  # reply id
    frame: bytes | None = None
    mark: str | None = None
    queued_at: float = 0.0


class Playout:
    """Owns the outbound side of the media stream; run :meth:`run` in the call's task group.

    ``on_frame_sent(owner, late_s, frames)`` is called for each message sent: ``frames``
    frames of reply ``owner`` went out ``late_s`` after they were due.
    """

    def __init__(
        self,
        media: MediaStream,
        fmt: AudioFormat,
        *,
        lead_ms: float = 120.0,
        frame_ms: float = 20.0,
        message_ms: float = 60.0,
        on_frame_sent: Callable[[int, float, int], None] | None = None,
        call_id: str = "-",
    ) -> None:
        self.media = media
        self.format = fmt
        self.lead = lead_ms / 1000
        self.frame_ms = frame_ms
        self.message_bytes = fmt.bytes_for_ms(message_ms)  # at least one item goes, whatever
        self._queue: deque[_Item] = deque()
        self._wake = anyio.Event()
        self._generation = 0
        self._play_end = 0.0  # when the audio sent so far will have finished playing
        self._on_frame_sent = on_frame_sent
        self._call_id = call_id
        self._now = loop_clock()

    def detach(self) -> None:
        """Drop the frame-sent callback once the call is over.

        It is the session's bound method, so keeping it makes a reference cycle and the
        whole call would wait for a full garbage collection to be freed.
        """
        self._on_frame_sent = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def enqueue_frame(self, owner: int, frame: bytes) -> None:
        self._queue.append(_Item(self._generation, owner, frame, None, self._now()))
        self._wake.set()

    def enqueue_mark(self, owner: int, name: str) -> None:
        self._queue.append(_Item(self._generation, owner, mark=name))
        self._wake.set()

    def drop_queued(self) -> None:
        """Forget every queued frame and mark now (synchronous: part of barge-in's one step).

        Items the sender already holds belong to the old generation and are discarded.
        """
        self._generation += 1
        self._queue.clear()

    async def clear(self) -> None:
        """Barge-in: drop queued audio here and at the far end."""
        self.drop_queued()
        self._play_end = self._now()
        await self.media.clear()

    async def run(self) -> None:
        while True:
            if not self._queue:
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            item = self._queue.popleft()
            if item.frame is not None:
                now = self._now()
                due = max(self._play_end - self.lead, item.queued_at)
                if due > now:  # queued_at <= now, so this is the far end's buffer
                    await anyio.sleep(due - now)
                    now = self._now()
                if item.generation != self._generation:
                    continue  # dropped by a barge-in while we waited
                if self._play_end < now:
                    self._play_end = now  # the far end ran dry; playback restarts now
                audio, frames = self._take_message(item)
                await self.media.send_audio(audio)
                self._play_end += self.format.duration_ms(len(audio)) / 1000
                if self._on_frame_sent is not None:
                    self._on_frame_sent(item.owner, max(0.0, now - due), frames)
            elif item.mark is not None and item.generation == self._generation:
                await self.media.mark(item.mark)

    def _take_message(self, first: _Item) -> tuple[bytes, int]:
        """``first``'s frame and the frames queued right behind it, up to ``message_ms`` of
        audio: the same reply's, stopping at a mark (it must follow its audio exactly)."""
        assert first.frame is not None
        queue = self._queue
        parts = [first.frame]
        size = len(first.frame)
        while queue and queue[0].frame is not None and queue[0].owner == first.owner:
            size += len(queue[0].frame)
            if size > self.message_bytes:
                break
            parts.append(queue.popleft().frame)  # type: ignore[arg-type]
        return b"".join(parts), len(parts)
