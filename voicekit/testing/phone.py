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
import json
import secrets
import time
from typing import Any, Self

import anyio
import httpx

from voicekit._resource import AsyncResource
from voicekit.audio import AudioFormat
from voicekit.background import BackgroundTasks
from voicekit.testing.asgi import ASGIWebSocket
from voicekit.testing.emulators.telnyx import TelnyxEmulator
from voicekit.testing.simulated_call import FRAME_MS, SimulatedCall, UtteranceReport
from voicekit.tls import HTTP1_ALPN, client_tls

__all__ = ["PhoneSimulator", "SimulatedCall", "UtteranceReport"]


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
