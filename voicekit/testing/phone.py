"""A phone simulator that calls a running voicekit server the way Telnyx does.

Per call: a signed ``call.initiated`` webhook; then, once the server has sent ``answer``
to the Telnyx REST emulator, the media WebSocket to the ``stream_url`` it gave (with the
``stream_auth_token`` header), ``connected``, ``start`` with the media format, and caller
audio in 20 ms frames on a steady clock, silence between utterances as a real line
carries; at the end ``stop`` and a signed ``call.hangup`` webhook.

The agent's audio is played back in real time: a mark is echoed when the audio sent
before it has finished playing (at the next 20 ms tick of the line; at once if nothing is
playing), ``clear`` drops queued audio and echoes pending marks, as Telnyx does. For each
caller utterance the simulator reports when the agent's audio began.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import httpx
import websockets

from voicekit._resource import AsyncResource
from voicekit.audio import AudioConverter, AudioFormat, read_wav
from voicekit.background import BackgroundTasks
from voicekit.testing.asgi import ASGIWebSocket, open_asgi_websocket
from voicekit.testing.emulators.telnyx import TelnyxEmulator
from voicekit.testing.playback import FarEndPlayback
from voicekit.testing.recording import LineRecording
from voicekit.tls import HTTP1_ALPN, client_tls
from voicekit.websocket import send_message

__all__ = ["PhoneSimulator", "SimulatedCall", "UtteranceReport"]

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


class PhoneSimulator(AsyncResource):
    """Places simulated calls into a voicekit server; see the module docstring."""

    def __init__(
        self,
        server_url: str,
        telnyx: TelnyxEmulator,
        *,
        seed: bytes | None = None,
        app: Any = None,
    ):
        """``app``: reach that ASGI app in memory (webhooks and media sockets, no network,
        on the event loop's clock, virtual or not) instead of the server at ``server_url``;
        run its lifespan with :func:`voicekit.testing.asgi.asgi_lifespan`."""
        from nacl.signing import SigningKey

        self.server_url = server_url.rstrip("/")
        self.telnyx = telnyx
        self.app = app
        self._sockets: list[ASGIWebSocket] = []  # in memory: each call's media socket
        self._key = SigningKey(seed or secrets.token_bytes(32))
        transport = None if app is None else httpx.ASGITransport(app=app)
        self._http = httpx.AsyncClient(
            timeout=10.0, verify=client_tls(HTTP1_ALPN), transport=transport
        )
        self._tasks: BackgroundTasks | None = None
        self._lines: dict[float, set[SimulatedCall]] = {}  # calls on each line clock, by speed

    async def __aenter__(self) -> Self:
        self._tasks = await self.own(BackgroundTasks("phone simulator")).__aenter__()
        return self

    @property
    def app_errors(self) -> list[BaseException]:
        """In memory: the exceptions the app let escape from the calls' media sockets
        (a server would log them and drop the connection); a test should expect none."""
        return [s.app_error for s in self._sockets if s.app_error is not None]

    @property
    def public_key(self) -> str:
        """Base64 Ed25519 public key, for ``[providers.telnyx] public_key``."""
        return base64.b64encode(bytes(self._key.verify_key)).decode()

    async def aclose(self) -> None:
        await self.stop_owned_tasks()
        await self._http.aclose()

    def _join_line(self, call: SimulatedCall) -> None:
        if self._tasks is None:
            raise RuntimeError("place calls inside `async with PhoneSimulator(...) as phone:`")
        calls = self._lines.get(call.speed)
        if calls is None:
            calls = self._lines[call.speed] = set()
            self._tasks.start(self._line_clock, call.speed, calls)
        calls.add(call)

    def _leave_line(self, call: SimulatedCall) -> None:
        self._lines.get(call.speed, set()).discard(call)

    async def _line_clock(self, speed: float, calls: set[SimulatedCall]) -> None:
        """Send the next caller frame of every call at this speed, one clock for them all.

        Telnyx sends each call's audio every 20 ms. One clock for every call instead of a
        timer per call keeps the simulator cheap enough to place hundreds of calls from one
        process (benchmarks/load.py) without its own lateness showing up in what it measures.
        """
        period = FRAME_MS / 1000 / speed
        start, n = anyio.current_time(), 0
        while calls:
            for call in list(calls):
                if not await call._tick():
                    calls.discard(call)
            n += 1
            await anyio.sleep(max(0.0, start + n * period - anyio.current_time()))
        del self._lines[speed]  # the next call at this speed starts a new clock

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = self._key.sign(f"{ts}|".encode() + body).signature
        return {
            "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
            "telnyx-timestamp": ts,
            "content-type": "application/json",
        }

    async def webhook(
        self,
        event_type: str,
        payload: dict[str, Any],
        *,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
        event_id: str | None = None,
    ) -> httpx.Response:
        body = json.dumps(
            {
                "data": {
                    "record_type": "event",
                    "event_type": event_type,
                    "id": event_id or secrets.token_hex(16),
                    "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "payload": payload,
                },
                "meta": {
                    "attempt": 1,
                    "delivered_to": f"{self.server_url}/telephony/telnyx/webhook",
                },
            }
        ).encode()
        return await self._http.post(
            f"{self.server_url}/telephony/telnyx/webhook",
            content=body,
            headers=headers or self.sign(body, timestamp),
        )

    def call(
        self,
        *,
        from_number: str = "+15550001111",
        to_number: str = "+15550002222",
        fmt: AudioFormat | None = None,
        speed: float = 1.0,
    ) -> SimulatedCall:
        """An inbound call: the simulator rings the server."""
        return SimulatedCall(self, from_number, to_number, fmt or AudioFormat("mulaw", 8000), speed)

    async def answer(
        self, *, limit_s: float = 10.0, fmt: AudioFormat | None = None, machine: bool | None = None
    ) -> SimulatedCall:
        """An outbound call: wait for the server's ``dial`` and pick up.

        ``machine`` sends an answering-machine detection result after the answer
        (True: a machine, False: a human, None: no detection webhook).
        """
        command = await self.telnyx.wait_for("dial", limit_s=limit_s)
        call = SimulatedCall(
            self,
            str(command.body["from"]),
            str(command.body["to"]),
            fmt or AudioFormat("mulaw", 8000),
            1.0,
        )
        call.call_id = str(command.call_control_id)
        call.dial = command.body
        call.machine = machine
        return call


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
