"""Both sides of a simulated phone line, time-aligned, as a stereo recording.

The caller's side is every 20 ms frame the phone sent, back to back on the line clock;
the agent's side is the audio as the far end played it: each piece starts when it
arrived or when the audio before it finished, and a ``clear`` cuts what had not played.
So a person listening hears the call as the caller did, barge-ins included.
"""

from __future__ import annotations

import numpy as np

from voicekit.audio import AudioConverter, AudioFormat

__all__ = ["LineRecording"]


class LineRecording:
    def __init__(self, fmt: AudioFormat) -> None:
        self.fmt = fmt
        self.started: float | None = None  # line time of the first caller frame
        self._caller = bytearray()
        self._agent: list[tuple[float, bytearray]] = []  # (play start, audio)

    def caller(self, now: float, frame: bytes) -> None:
        if self.started is None:
            self.started = now
        self._caller += frame

    def agent(self, start: float, audio: bytes) -> None:
        if self._agent:
            last_start, last = self._agent[-1]
            if abs(last_start + self.fmt.duration_ms(len(last)) / 1000 - start) < 1e-6:
                last += audio  # played straight on from the piece before
                return
        self._agent.append((start, bytearray(audio)))

    def clear(self, now: float) -> None:
        """The far end dropped the agent audio that had not played by ``now``."""
        kept: list[tuple[float, bytearray]] = []
        for start, audio in self._agent:
            if start >= now:
                continue
            played = self.fmt.bytes_for_ms((now - start) * 1000)
            played -= played % self.fmt.block_size
            kept.append((start, audio[:played]))
        self._agent = kept

    def stereo(self) -> tuple[AudioFormat, bytes]:
        """16-bit stereo PCM at the line's rate: the caller left, the agent right."""
        pcm = AudioFormat("pcm_s16le", self.fmt.sample_rate)
        caller = _samples(self.fmt, pcm, bytes(self._caller))
        origin = self.started if self.started is not None else 0.0
        placed = []
        for start, audio in self._agent:
            offset = max(0, round((start - origin) * pcm.sample_rate))
            placed.append((offset, _samples(self.fmt, pcm, bytes(audio))))
        length = max([len(caller), *(o + len(s) for o, s in placed)], default=0)
        left = np.zeros(length, dtype=np.int16)
        right = np.zeros(length, dtype=np.int16)
        left[: len(caller)] = caller
        for offset, samples in placed:
            right[offset : offset + len(samples)] = samples
        frames = np.empty(length * 2, dtype="<i2")
        frames[0::2], frames[1::2] = left, right
        return AudioFormat("pcm_s16le", pcm.sample_rate, 2), frames.tobytes()


def _samples(fmt: AudioFormat, pcm: AudioFormat, audio: bytes) -> np.ndarray:
    converter = AudioConverter(fmt, pcm)
    data = converter.process(audio) + converter.flush()
    return np.frombuffer(data, dtype="<i2")
