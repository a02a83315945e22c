"""An in-memory MediaStream that plays the agent's audio in real time.

It behaves like a telephony media stream seen from the server: audio sent is queued and
played back to back at real-time speed (on whatever clock anyio runs, virtual or not);
a mark is echoed when the audio sent before it has finished playing, or at once when
nothing is queued; ``clear`` drops the unplayed audio and echoes the queued marks, as
Telnyx does (:class:`~voicekit.testing.playback.FarEndPlayback`). The caller's side is
driven by the test: ``say`` streams caller audio, ``hang_up`` stops the stream, ``fail``
breaks it.

``played_audio()`` is the ground truth of what the caller heard.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from voicekit.audio import ULAW_8K, AudioFormat
from voicekit.telephony import (
    CallInfo,
    Dtmf,
    InboundAudio,
    MarkReached,
    MediaEvent,
    MediaStream,
    StreamStopped,
)
from voicekit.testing.playback import FarEndPlayback

__all__ = ["FakeMediaStream", "PlayedSegment"]


class _Wake:
    """Wakes the event iterator so it re-reads the mark schedule."""


@dataclass(slots=True)
class PlayedSegment:
    """One ``send_audio`` call and when it plays; ``cut`` is set if a clear cut it short."""

    start: float
    end: float
    data: bytes
    cut: float | None = None


class FakeMediaStream(MediaStream):
    def __init__(
        self,
        call: CallInfo | None = None,
        *,
        inbound_format: AudioFormat = ULAW_8K,
        outbound_format: AudioFormat | None = None,
    ) -> None:
        self._call = call or CallInfo(
            call_id="fake-call", from_number="+15550001111", to_number="+15550002222"
        )
        self._in_fmt = inbound_format
        self._out_fmt = outbound_format or inbound_format
        send, recv = anyio.create_memory_object_stream[MediaEvent | _Wake | Exception](math.inf)
        self._send: MemoryObjectSendStream[MediaEvent | _Wake | Exception] = send
        self._recv: MemoryObjectReceiveStream[MediaEvent | _Wake | Exception] = recv
        self.segments: list[PlayedSegment] = []
        self.sent_frames: list[tuple[float, bytes]] = []
        self.marks_sent: list[tuple[float, str]] = []
        self.marks_reached: list[tuple[float, str]] = []
        self.clears: list[float] = []
        self._far_end = FarEndPlayback()
        self.stopped = False

    # -- MediaStream ----------------------------------------------------------------------

    @property
    def call(self) -> CallInfo:
        return self._call

    @property
    def inbound_format(self) -> AudioFormat:
        return self._in_fmt

    @property
    def outbound_format(self) -> AudioFormat:
        return self._out_fmt

    async def send_audio(self, data: bytes) -> None:
        now = anyio.current_time()
        start, end = self._far_end.audio(now, self._out_fmt.duration_ms(len(data)) / 1000)
        self.segments.append(PlayedSegment(start, end, data))
        self.sent_frames.append((now, data))

    async def mark(self, name: str) -> None:
        now = anyio.current_time()
        self.marks_sent.append((now, name))
        self._far_end.mark(now, name)
        self._send.send_nowait(_Wake())

    async def clear(self) -> None:
        now = anyio.current_time()
        self.clears.append(now)
        for seg in self.segments:
            if seg.cut is None and seg.end > now:
                seg.cut = max(now, seg.start)
        self._far_end.clear(now)
        self._send.send_nowait(_Wake())

    async def __aiter__(self) -> AsyncIterator[MediaEvent]:
        while True:
            now = anyio.current_time()
            for name in self._far_end.take_due(now):
                self.marks_reached.append((now, name))
                yield MarkReached(name)
            next_due = self._far_end.next_due()
            event: MediaEvent | _Wake | Exception | None = None
            wait = math.inf if next_due is None else next_due - anyio.current_time()
            with anyio.move_on_after(wait):
                try:
                    event = await self._recv.receive()
                except anyio.EndOfStream:
                    return
            if event is None or isinstance(event, _Wake):
                continue
            if isinstance(event, Exception):
                raise event
            yield event
            if isinstance(event, StreamStopped):
                return

    # -- the caller's side ------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Deliver caller audio now (in ``inbound_format``)."""
        self._send.send_nowait(InboundAudio(data))

    async def say(self, audio: bytes, *, frame_ms: float = 20.0, realtime: bool = True) -> None:
        """Stream caller audio in frames, paced in real time unless ``realtime=False``."""
        size = self._in_fmt.bytes_for_ms(frame_ms)
        start = anyio.current_time()
        for n, i in enumerate(range(0, len(audio), size)):
            self.feed(audio[i : i + size])
            if realtime:
                # Pace against the start time, like a phone's steady clock: sleeping a
                # relative 20 ms per frame would let timer lateness pile up.
                await anyio.sleep(
                    max(0.0, start + (n + 1) * frame_ms / 1000 - anyio.current_time())
                )

    def press(self, digit: str) -> None:
        self._send.send_nowait(Dtmf(digit))

    def hang_up(self) -> None:
        """The caller hangs up: the stream stops."""
        if not self.stopped:
            self.stopped = True
            self._send.send_nowait(StreamStopped("caller hung up"))

    def fail(self, error: Exception) -> None:
        """Break the stream: iteration raises ``error``."""
        self._send.send_nowait(error)

    # -- ground truth -------------------------------------------------------------------------

    def played_audio(self, until: float | None = None) -> bytes:
        """The audio the caller has heard up to ``until`` (default: now)."""
        limit = anyio.current_time() if until is None else until
        block = self._out_fmt.block_size
        out = bytearray()
        for seg in self.segments:
            stop = min(seg.end, limit if seg.cut is None else min(seg.cut, limit))
            if stop <= seg.start:
                continue
            frac = (stop - seg.start) / (seg.end - seg.start)
            n = round(len(seg.data) * frac / block) * block
            out += seg.data[:n]
        return bytes(out)

    def played_ms(self, until: float | None = None) -> float:
        return self._out_fmt.duration_ms(len(self.played_audio(until)))
