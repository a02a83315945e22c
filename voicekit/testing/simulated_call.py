"""One simulated call on a :class:`~voicekit.testing.phone.PhoneSimulator`'s line: the
media WebSocket as Telnyx opens it, the caller's 20 ms frames, and what came back
(agent audio played back in real time, marks echoed, ``clear``), with a report per
caller utterance."""

from __future__ import annotations

import base64
import datetime
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio
import websockets

from voicekit.audio import AudioConverter, AudioFormat, read_wav
from voicekit.testing.asgi import open_asgi_websocket
from voicekit.testing.playback import FarEndPlayback
from voicekit.testing.recording import LineRecording
from voicekit.websocket import send_message

if TYPE_CHECKING:
    from voicekit.testing.phone import PhoneSimulator

__all__ = ["FRAME_MS", "SimulatedCall", "UtteranceReport"]

FRAME_MS = 20.0
_CODEC_NAMES = {"mulaw": "PCMU", "alaw": "PCMA", "pcm_s16le": "L16"}


@dataclass
class UtteranceReport:
    """One caller utterance: when it ended and when the agent's audio began after it."""

    ended_at: float
    agent_started_at: float | None = None

    @property
    def latency_ms(self) -> float | None:
        if self.agent_started_at is None:
            return None
        return (self.agent_started_at - self.ended_at) * 1000


class SimulatedCall:
    """One call; use ``async with phone.call() as call:``.

    What the phone heard and saw, for a test to check:

    - ``agent_audio``: every byte of agent audio received, in the call's codec;
    - ``agent_messages``: (arrival time, seconds of audio) of each agent media message;
    - ``marks_echoed``: the marks the phone echoed once their audio had played;
    - ``clears``: the times a ``clear`` arrived (the agent was interrupted);
    - ``utterances``: an :class:`UtteranceReport` per ``say``, with ``latency_ms``;
    - ``closed_code``: the WebSocket close code once the server closed the stream;
    - ``call_id``: the Telnyx call control id the server knows the call by.
    """

    def __init__(
        self,
        phone: PhoneSimulator,
        from_number: str,
        to_number: str,
        fmt: AudioFormat,
        speed: float,
    ) -> None:
        self.phone = phone
        self.call_id = f"v3:sim-{secrets.token_hex(8)}"
        self.from_number, self.to_number = from_number, to_number
        self.format = fmt
        self.speed = speed
        self.ws: Any = None
        self.agent_audio = bytearray()
        # Each agent media message: its arrival and the seconds of audio it carried.
        self.agent_messages: list[tuple[float, float]] = []
        self.marks_echoed: list[str] = []
        self.clears: list[float] = []
        self.utterances: list[UtteranceReport] = []
        self.closed_code: int | None = None
        self._queue = bytearray()
        self._drained = anyio.Event()
        self._play = FarEndPlayback()
        self._tg: Any = None
        self._seq = 0
        self._frames_sent = 0
        self._size = fmt.bytes_for_ms(FRAME_MS)
        self._silence = fmt.silence(FRAME_MS)
        self._silent_payload = base64.b64encode(self._silence).decode()  # most frames
        self._hung_up = False
        self._stream_id = secrets.token_hex(8)
        self.dial: dict[str, Any] | None = None  # set for an outbound call
        self.machine: bool | None = None
        self.recording: LineRecording | None = None  # set it to record both sides
        self.last_agent_audio: float | None = None  # arrival of the latest agent frame

    @property
    def frame_times(self) -> list[float]:
        """The arrival of each agent media message (kept for older tests: a message may
        carry several frames; ``agent_messages`` has how much audio each carried)."""
        return [at for at, _ in self.agent_messages]

    async def __aenter__(self) -> Self:
        if self.dial is None:
            self.phone.telnyx.register_call(self.call_id)
            response = await self.phone.webhook(
                "call.initiated",
                {
                    "call_control_id": self.call_id,
                    "call_leg_id": secrets.token_hex(8),
                    "call_session_id": secrets.token_hex(8),
                    "connection_id": "sim",
                    "from": self.from_number,
                    "to": self.to_number,
                    "direction": "incoming",
                    "state": "parked",
                    "client_state": None,
                },
            )
            response.raise_for_status()
            try:
                stream = (await self.phone.telnyx.wait_for("answer", self.call_id)).body
            except TimeoutError:
                raise TimeoutError(
                    f"the server took call {self.call_id} but never sent Telnyx its answer "
                    "command: check that its [providers.telnyx] base_url (or, in memory, "
                    "TelnyxTelephony(http_transport=...)) reaches this TelnyxEmulator, and "
                    "the server's log"
                ) from None
        else:
            stream = self.dial
            response = await self.phone.webhook(
                "call.answered",
                {
                    "call_control_id": self.call_id,
                    "from": self.from_number,
                    "to": self.to_number,
                    "state": "answered",
                },
            )
            response.raise_for_status()
        url, token = stream["stream_url"], stream.get("stream_auth_token")
        headers = {"x-telnyx-streaming-auth-token": token} if token else {}
        if self.phone.app is not None:
            assert self.phone._tasks is not None
            self.ws = await open_asgi_websocket(
                self.phone.app, url, start_soon=self.phone._tasks.start, headers=headers
            )
            self.phone._sockets.append(self.ws)
        else:
            self.ws = await websockets.connect(
                url, additional_headers=headers, max_size=2**22, compression=None
            )
        await self._send({"event": "connected", "version": "1.0.0"})
        await self._send(
            {
                "event": "start",
                "stream_id": self._stream_id,
                "start": {
                    "call_control_id": self.call_id,
                    "from": self.from_number,
                    "to": self.to_number,
                    "media_format": {
                        "encoding": _CODEC_NAMES[self.format.encoding],
                        "sample_rate": self.format.sample_rate,
                        "channels": 1,
                    },
                },
            }
        )
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._receiver)
        self.phone._join_line(self)
        if self.machine is not None:
            await self.phone.webhook(
                "call.machine.detection.ended",
                {"call_control_id": self.call_id, "result": "machine" if self.machine else "human"},
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.hangup()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
            await self._tg.__aexit__(None, None, None)

    # -- the caller's side -------------------------------------------------------------------

    async def say(self, audio: bytes) -> UtteranceReport:
        """Speak ``audio`` (in the call's format); returns when the last frame was sent,
        or at once when the line is gone."""
        report = UtteranceReport(ended_at=0.0)
        if not audio or self._hung_up or self.closed_code is not None:
            report.ended_at = anyio.current_time()
            return report
        self._queue.extend(audio)
        self._drained = anyio.Event()
        with anyio.fail_after(len(audio) / self.format.bytes_per_second / self.speed + 10):
            await self._drained.wait()
        report.ended_at = anyio.current_time()
        self.utterances.append(report)
        return report

    async def say_wav(self, path: str | Path) -> UtteranceReport:
        """Speak a WAV file (16-bit PCM, mu-law or A-law), converted to the call's codec."""
        fmt, audio = read_wav(path)
        converter = AudioConverter(fmt, self.format)
        return await self.say(converter.process(audio) + converter.flush())

    async def wait(self, seconds: float) -> None:
        await anyio.sleep(seconds / self.speed)

    @property
    def agent_playing_until(self) -> float:
        """When the agent audio received so far will have finished playing."""
        return self._play.end

    async def agent_turn_over(
        self, since: float, *, quiet_s: float = 0.6, first_audio_s: float = 15.0
    ) -> bool:
        """Wait until the agent has spoken after ``since`` and then been quiet for
        ``quiet_s``; False if no agent audio came within ``first_audio_s``, or the call
        ended."""
        with anyio.move_on_after(first_audio_s):
            while self.last_agent_audio is None or self.last_agent_audio < since:
                if self.closed_code is not None:
                    return False
                await anyio.sleep(0.05)
        if self.last_agent_audio is None or self.last_agent_audio < since:
            return False
        while self.closed_code is None:
            quiet_since = max(self._play.end, self.last_agent_audio or 0.0)
            if anyio.current_time() - quiet_since >= quiet_s:
                return True
            await anyio.sleep(0.05)
        return False

    async def press(self, keys: str, *, gap_s: float = 0.15) -> None:
        """Press keys on the keypad (``"1234#"``): a ``dtmf`` frame each, as Telnyx sends
        them, ``gap_s`` apart."""
        for n, digit in enumerate(keys):
            if n:
                await self.wait(gap_s)
            occurred = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
            await self._send({"event": "dtmf", "occurred_at": occurred, "dtmf": {"digit": digit}})

    async def send_raw(self, text: str) -> None:
        """Send an arbitrary frame (malformed-frame tests)."""
        await self.ws.send(text)

    async def hangup(self) -> None:
        if self._hung_up:
            return
        self._hung_up = True
        self.phone._leave_line(self)
        try:
            await self._send({"event": "stop", "stop": {"call_control_id": self.call_id}})
            await self.ws.close()
        except (websockets.ConnectionClosed, OSError, AttributeError):
            pass
        self.phone.telnyx.end_call(self.call_id)
        await self.phone.webhook(
            "call.hangup",
            {
                "call_control_id": self.call_id,
                "hangup_cause": "normal_clearing",
                "hangup_source": "caller",
                "from": self.from_number,
                "to": self.to_number,
            },
        )

    # -- the line -----------------------------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        self._seq += 1
        message.setdefault("sequence_number", str(self._seq))
        message.setdefault("stream_id", self._stream_id)
        await send_message(self.ws, json.dumps(message))

    async def _tick(self) -> bool:
        """One tick of the phone's line clock: echo the marks whose audio has finished
        playing, then send the next 20 ms of caller audio. False once the socket is gone.

        Marks ride the clock instead of a timer of their own: one task per call fewer, and
        Telnyx too reports playback at frame boundaries.
        """
        if self._play.pending_marks:
            for name in self._play.take_due(anyio.current_time()):
                self.marks_echoed.append(name)
                try:
                    await self._send({"event": "mark", "mark": {"name": name}})
                except (websockets.ConnectionClosed, OSError):
                    return False
        return await self._send_frame()

    async def _send_frame(self) -> bool:
        """Send the next 20 ms of caller audio (silence when nothing is queued)."""
        if self._queue:
            frame = bytes(self._queue[: self._size])
            del self._queue[: self._size]
            if len(frame) < self._size:
                frame += self._silence[len(frame) :]
            payload = base64.b64encode(frame).decode()
            if not self._queue:
                self._drained.set()
        else:
            frame, payload = self._silence, self._silent_payload
        if self.recording is not None:
            self.recording.caller(anyio.current_time(), frame)
        self._seq += 1
        n = self._frames_sent
        # The same JSON json.dumps would give, built directly: this runs 50 times a second
        # per call, and load tests place hundreds of calls.
        text = (
            f'{{"event": "media", "sequence_number": "{self._seq}", "stream_id": '
            f'"{self._stream_id}", "media": {{"track": "inbound", "chunk": "{n + 1}", '
            f'"timestamp": "{int(n * FRAME_MS)}", "payload": "{payload}"}}}}'
        )
        try:
            await send_message(self.ws, text)
        except (websockets.ConnectionClosed, OSError):
            self._queue.clear()  # the line is gone: nothing more will be said
            self._drained.set()
            return False
        self._frames_sent = n + 1
        return True

    async def _receiver(self) -> None:
        try:
            async for raw in self.ws:
                self._on_message(json.loads(raw))
        except websockets.ConnectionClosed:
            pass
        self.closed_code = self.ws.close_code

    def _on_message(self, message: dict[str, Any]) -> None:
        now = anyio.current_time()
        event = message.get("event")
        if event == "media":
            audio = base64.b64decode(message["media"]["payload"])
            self.agent_audio.extend(audio)
            seconds = self.format.duration_ms(len(audio)) / 1000
            self.agent_messages.append((now, seconds))
            self.last_agent_audio = now
            for report in self.utterances:
                if report.agent_started_at is None and report.ended_at and now >= report.ended_at:
                    report.agent_started_at = now
            start, _ = self._play.audio(now, seconds)
            if self.recording is not None:
                self.recording.agent(start, audio)
        elif event == "mark":
            self._play.mark(now, message["mark"]["name"])
        elif event == "clear":
            self.clears.append(now)
            self._play.clear(now)
            if self.recording is not None:
                self.recording.clear(now)
