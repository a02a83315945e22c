"""A loopback emulator of the ElevenLabs TTS API (PROTOCOLS.md §1).

- ``WS /v1/text-to-speech/{voice_id}/stream-input`` and ``.../multi-stream-input``;
- ``POST /v1/text-to-speech/{voice_id}/stream`` (REST streaming).

Auth is accepted as the ``xi-api-key`` header, the ``xi_api_key`` or ``xi-api-key`` body
field of the first message, or the ``authorization`` query parameter. The protocol rules
are enforced the way the service does, each ending the socket with 1008 and the reason:
the ``input_timeout_exceeded`` error after ``inactivity_timeout`` seconds without input,
more than 5 concurrent contexts, ``voice_settings`` changed after a context's first
message, and a keepalive sent to a context that was never initialised. Every message
received is logged in ``received`` so tests can check conformance.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import anyio

from voicekit.testing.emulators._server import Faults, LoopbackServer, ServedEmulator
from voicekit.testing.emulators.elevenlabs_audio import OUTPUT_FORMATS, audio_messages

__all__ = ["ElevenLabsEmulator", "Received"]

logger = logging.getLogger(__name__)

MAX_CONTEXTS = 5
VOICE_SETTINGS_CHANGED = (
    "voice_settings field must be provided in the first message and then either be not "
    "provided or not change."
)


def timeout_error(seconds: float) -> dict[str, Any]:
    return {
        "message": f"Have not received a new text input within the timeout of {seconds:.1f} "
        "seconds. Streaming input terminated. Please make sure to either feed the input in "
        'the timely manner, or to send the end of input text (empty string "") when done.',
        "error": "input_timeout_exceeded",
        "code": 1008,
    }


@dataclass
class Received:
    """One message the emulator received."""

    connection: int
    endpoint: str  # "stream-input" | "multi-stream-input" | "rest"
    message: dict[str, Any]


class _ProtocolError(Exception):
    def __init__(self, reason: str, error: str = "invalid_request") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


@dataclass
class _Context:
    """One context: text buffered until a flush, then generated in flush order."""

    voice_settings: Any = None
    buffer: str = ""
    closed: bool = False
    generated: int = 0  # audio messages sent
    queue: list[str | None] = field(default_factory=list)  # flushed texts; None = close
    wake: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)  # isFinal sent

    def enqueue(self, item: str | None) -> None:
        self.queue.append(item)
        self.wake.set()


@dataclass
class _Connection:
    id: int
    endpoint: str
    websocket: Any
    output_format: str
    authed: bool
    inactivity_timeout: float
    contexts: dict[str, _Context] = field(default_factory=dict)
    sent: int = 0
    send_lock: anyio.Lock = field(default_factory=anyio.Lock)
    last_input: float = 0.0


class ElevenLabsEmulator(ServedEmulator):
    """``async with ElevenLabsEmulator() as el:`` then point the plugin at ``el.url``."""

    def __init__(
        self,
        *,
        api_key: str = "test-elevenlabs-key",
        first_audio_ms: float = 30.0,
        ms_per_char: float = 50.0,
        chars_per_chunk: int = 12,
        inactivity_timeout_s: float | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.api_key = api_key
        self.first_audio_ms = first_audio_ms
        self.ms_per_char = ms_per_char
        self.chars_per_chunk = chars_per_chunk
        self.inactivity_timeout_s = inactivity_timeout_s  # overrides the query value (tests)
        self.faults = faults or Faults()
        self.received: list[Received] = []
        self.connections: list[_Connection] = []
        self.handshakes: list[dict[str, str]] = []  # query params of every upgrade
        self.audio_sent: dict[str, bytearray] = {}  # context id -> audio sent, in order
        self.server = LoopbackServer(self._app())

    @property
    def url(self) -> str:
        """Base URL (ws://...) for the WebSocket endpoints."""
        return self.server.ws_url

    @property
    def http_url(self) -> str:
        return self.server.http_url

    def messages(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        return [r.message for r in self.received if endpoint in (None, r.endpoint)]

    # -- app -------------------------------------------------------------------------------

    def _app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.routing import Route, WebSocketRoute

        return Starlette(
            routes=[
                WebSocketRoute("/v1/text-to-speech/{voice_id}/stream-input", self._stream_input),
                WebSocketRoute("/v1/text-to-speech/{voice_id}/multi-stream-input", self._multi),
                Route("/v1/text-to-speech/{voice_id}/stream", self._rest, methods=["POST"]),
            ]
        )

    def _key_ok(self, value: str | None) -> bool:
        if value is None:
            return False
        return value.removeprefix("Bearer ").strip() == self.api_key

    async def _open(self, websocket: Any, endpoint: str) -> _Connection | None:
        from starlette.responses import JSONResponse

        params = dict(websocket.query_params)
        self.handshakes.append(params)
        header = websocket.headers.get("xi-api-key")
        query = params.get("authorization")
        if self.faults.refuse_handshake is not None or (
            (header is not None and not self._key_ok(header))
            or (query is not None and not self._key_ok(query))
        ):
            status = self.faults.refuse_handshake or 401
            body = {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}
            await websocket.send_denial_response(JSONResponse(body, status_code=status))
            return None
        fmt = params.get("output_format", "mp3_44100")
        await websocket.accept()
        conn = _Connection(
            id=len(self.connections) + 1,
            endpoint=endpoint,
            websocket=websocket,
            output_format=fmt,
            authed=self._key_ok(header) or self._key_ok(query),
            inactivity_timeout=self.inactivity_timeout_s
            or min(float(params.get("inactivity_timeout", 20)), 180.0),
            last_input=anyio.current_time(),
        )
        self.connections.append(conn)
        if fmt not in OUTPUT_FORMATS:
            await self._fail(conn, f"output_format {fmt} is not emulated", "invalid_format")
            return None
        return conn

    async def _send(self, conn: _Connection, message: dict[str, Any]) -> None:
        async with conn.send_lock:
            if self.faults.delay_ms:
                await anyio.sleep(self.faults.delay_ms / 1000)
            every = self.faults.malformed_every
            if every and (conn.sent + 1) % every == 0:
                await conn.websocket.send_text('{"audio": "not json')
            if self.faults.should_drop(conn.sent):
                self.faults.dropped += 1
                raise ConnectionAbortedError("emulated network drop")
            await conn.websocket.send_text(json.dumps(message))
            conn.sent += 1

    async def _fail(self, conn: _Connection, reason: str, error: str) -> None:
        message = {"message": reason, "error": error, "code": 1008}
        await conn.websocket.send_text(json.dumps(message))
        await conn.websocket.close(code=1008, reason=reason[:120])

    async def _receive(self, conn: _Connection) -> dict[str, Any] | None:
        """Next JSON message, or None on disconnect; enforces the inactivity timeout."""
        from starlette.websockets import WebSocketDisconnect

        deadline = conn.last_input + conn.inactivity_timeout
        with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
            try:
                raw = await conn.websocket.receive_text()
            except WebSocketDisconnect:
                return None
            conn.last_input = anyio.current_time()
            try:
                message = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise _ProtocolError(f"invalid JSON: {exc}") from None
            if not isinstance(message, dict):
                raise _ProtocolError("message must be a JSON object")
            self.received.append(Received(conn.id, conn.endpoint, message))
            return message
        error = timeout_error(conn.inactivity_timeout)
        await conn.websocket.send_text(json.dumps(error))
        await conn.websocket.close(code=1008, reason=error["message"][:120])
        return None

    def _check_auth(self, conn: _Connection, message: dict[str, Any]) -> None:
        if conn.authed:
            return
        key = message.get("xi_api_key", message.get("xi-api-key", message.get("authorization")))
        if not self._key_ok(key):
            raise _ProtocolError("Invalid API key", "invalid_api_key")
        conn.authed = True

    async def _speak(self, conn: _Connection, cid: str | None, ctx: _Context, text: str) -> None:
        if not text.strip():
            return
        if ctx.generated == 0 and self.first_audio_ms:
            await anyio.sleep(self.first_audio_ms / 1000)
        fmt = OUTPUT_FORMATS[conn.output_format]
        for message in audio_messages(
            text,
            fmt,
            ms_per_char=self.ms_per_char,
            chars_per_chunk=self.chars_per_chunk,
            context_id=cid,
        ):
            await self._send(conn, message)
            ctx.generated += 1
            key = cid or f"stream-{conn.id}"
            self.audio_sent.setdefault(key, bytearray()).extend(base64.b64decode(message["audio"]))

    async def _worker(self, conn: _Connection, cid: str | None, ctx: _Context) -> None:
        """Generate a context's flushed texts in order; after a close, send ``isFinal``.

        A close lets generation already flushed finish first, as the service does."""
        while True:
            while not ctx.queue:
                await ctx.wake.wait()
                ctx.wake = anyio.Event()
            item = ctx.queue.pop(0)
            if item is None:
                final: dict[str, Any] = {"isFinal": True}
                if cid is not None:
                    final["contextId"] = cid
                await self._send(conn, final)
                ctx.done.set()
                return
            await self._speak(conn, cid, ctx, item)

    def _flush(self, ctx: _Context) -> None:
        text, ctx.buffer = ctx.buffer, ""
        if text:
            ctx.enqueue(text)

    # -- multi-stream-input ----------------------------------------------------------------

    async def _multi(self, websocket: Any) -> None:
        conn = await self._open(websocket, "multi-stream-input")
        if conn is None:
            return
        async with anyio.create_task_group() as tg:
            try:
                await self._multi_loop(conn, tg)
            except _ProtocolError as exc:
                await self._fail(conn, exc.reason, exc.error)
            tg.cancel_scope.cancel()

    async def _multi_loop(self, conn: _Connection, tg: Any) -> None:
        while True:
            message = await self._receive(conn)
            if message is None:
                return
            self._check_auth(conn, message)
            if message.get("close_socket"):
                for ctx in conn.contexts.values():
                    self._flush(ctx)
                    ctx.enqueue(None)
                with anyio.fail_after(30):
                    for ctx in list(conn.contexts.values()):
                        await ctx.done.wait()
                await conn.websocket.close(code=1000)
                return
            await self._multi_message(conn, message, tg)

    async def _multi_message(self, conn: _Connection, message: dict[str, Any], tg: Any) -> None:
        cid = message.get("context_id")
        text = message.get("text")
        if cid is None:
            if text == "":
                return  # connection keepalive (the form Pipecat uses)
            cid = "default"
        ctx = conn.contexts.get(cid)
        if message.get("close_context"):
            if ctx is not None:
                del conn.contexts[cid]
                ctx.closed = True
                ctx.buffer = ""  # unflushed text is dropped
                ctx.enqueue(None)
            return
        if ctx is None:
            if text == "":
                raise _ProtocolError(
                    f"context {cid} received a keepalive before it was initialised"
                )
            if len(conn.contexts) >= MAX_CONTEXTS:
                raise _ProtocolError("maximum of 5 concurrent contexts per connection exceeded")
            ctx = conn.contexts[cid] = _Context(voice_settings=message.get("voice_settings"))
            tg.start_soon(self._worker, conn, cid, ctx)
            if text == " ":
                text = ""  # the initialising space is not speech
        elif "voice_settings" in message and message["voice_settings"] != ctx.voice_settings:
            raise _ProtocolError(VOICE_SETTINGS_CHANGED)
        if text:
            ctx.buffer += text
        if message.get("flush") or message.get("try_trigger_generation"):
            self._flush(ctx)

    # -- stream-input ----------------------------------------------------------------------

    async def _stream_input(self, websocket: Any) -> None:
        conn = await self._open(websocket, "stream-input")
        if conn is None:
            return
        ctx = _Context()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._worker, conn, None, ctx)
            try:
                await self._single_loop(conn, ctx)
            except _ProtocolError as exc:
                await self._fail(conn, exc.reason, exc.error)
            tg.cancel_scope.cancel()

    async def _single_loop(self, conn: _Connection, ctx: _Context) -> None:
        first = True
        while True:
            message = await self._receive(conn)
            if message is None:
                return
            if first:
                self._check_auth(conn, message)
                if message.get("text") != " ":
                    raise _ProtocolError('the first message must have text " "')
                ctx.voice_settings = message.get("voice_settings")
                first = False
                continue
            if "voice_settings" in message and message["voice_settings"] != ctx.voice_settings:
                raise _ProtocolError(VOICE_SETTINGS_CHANGED)
            text = message.get("text", "")
            if text == "":
                self._flush(ctx)
                ctx.enqueue(None)
                with anyio.fail_after(30):
                    await ctx.done.wait()
                await conn.websocket.close(code=1000)
                return
            ctx.buffer += text
            if message.get("flush") or message.get("try_trigger_generation"):
                self._flush(ctx)

    # -- REST --------------------------------------------------------------------------------

    async def _rest(self, request: Any) -> Any:
        from starlette.responses import JSONResponse, StreamingResponse

        if self.faults.refuse_handshake is not None or not self._key_ok(
            request.headers.get("xi-api-key")
        ):
            status = self.faults.refuse_handshake or 401
            body = {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}
            return JSONResponse(body, status_code=status)
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return JSONResponse(
                {"detail": [{"loc": ["body"], "msg": "invalid JSON", "type": "value_error"}]},
                status_code=422,
            )
        self.received.append(Received(0, "rest", body))
        fmt_name = request.query_params.get("output_format", "mp3_44100_128")
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text or fmt_name not in OUTPUT_FORMATS:
            loc = ["body", "text"] if not text else ["query", "output_format"]
            return JSONResponse(
                {"detail": [{"loc": loc, "msg": "invalid value", "type": "value_error"}]},
                status_code=422,
            )
        fmt = OUTPUT_FORMATS[fmt_name]
        messages = audio_messages(
            text,
            fmt,
            ms_per_char=self.ms_per_char,
            chars_per_chunk=self.chars_per_chunk,
            context_id=None,
        )

        async def body_iter() -> Any:
            await anyio.sleep(self.first_audio_ms / 1000)
            for message in messages:
                yield base64.b64decode(message["audio"])

        media = "audio/basic" if fmt.encoding == "mulaw" else "application/octet-stream"
        return StreamingResponse(body_iter(), media_type=media)
