"""A loopback emulator of Soniox real-time STT (PROTOCOLS.md §2).

``WS /transcribe-websocket``: a JSON config first (validated as the service does), then
binary audio, JSON control messages (``finalize``, ``keepalive``) and an empty frame to
end. Each burst of caller audio with energy is heard as the next scripted utterance:
non-final tokens while it lasts, final tokens plus ``<end>`` after ``endpoint_ms`` of
silence. With ``final_after_ms``, the words become final sooner, after that much silence,
and every silent frame until ``<end>`` gets a response with no tokens (the service's
progress responses), as the real service finalizes words before it decides on an
endpoint. ``finalize`` makes pending words final and answers ``<fin>``; the end-of-stream
frame gets the remaining finals and ``finished: true``. With no audio or keepalive for
``idle_timeout_s`` the connection is closed (error 408).

Auth: ``Authorization: Bearer <key>`` on the upgrade, or the legacy ``api_key`` field.
The position in the script is kept across connections, so a client that reconnects and
re-sends audio not yet covered by finals hears the same words again, once.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np

from voicekit.audio import AudioConverter, AudioFormat, alaw_decode, ulaw_decode
from voicekit.testing.emulators._server import Faults, LoopbackServer, ServedEmulator

__all__ = ["SonioxEmulator"]

logger = logging.getLogger(__name__)

MODELS = {"stt-rt-v5", "stt-rt-v4", "stt-rt-v3", "stt-rt-preview", "stt-rt-preview-v2"}
RAW_FORMATS = {"mulaw", "alaw", "pcm_s16le"}  # the raw formats the emulator decodes
OTHER_FORMATS = {  # valid for the service, not decoded by the emulator
    "auto", "aac", "aiff", "amr", "asf", "wav", "mp3", "flac", "ogg", "webm", "pcm_s8",
    "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_s32le", "pcm_s32be", "pcm_u8", "pcm_u16le",
    "pcm_u16be", "pcm_u24le", "pcm_u24be", "pcm_u32le", "pcm_u32be", "pcm_f32le", "pcm_f32be",
    "pcm_f64le", "pcm_f64be",
}  # fmt: skip


class _Reject(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Stream:
    id: int
    websocket: Any
    config: dict[str, Any] = field(default_factory=dict)
    fmt: AudioFormat | None = None
    to_pcm: AudioConverter | None = None
    audio_ms: float = 0.0
    audio_bytes: int = 0
    audio_messages: int = 0
    sent: int = 0
    speech_start: float | None = None
    speech_end: float = 0.0
    speech_ms: float = 0.0
    revealed: int = 0
    finalized: int = 0  # words of the utterance already sent as final
    final_ms: float = 0.0
    controls: list[dict[str, Any]] = field(default_factory=list)
    last_input: float = 0.0
    timed_out: bool = False


@functools.lru_cache(maxsize=2)
def _squares(encoding: str) -> np.ndarray:
    """Squared 16-bit value of each of the 256 G.711 codes."""
    decode = ulaw_decode if encoding == "mulaw" else alaw_decode
    return np.frombuffer(decode(bytes(range(256))), "<i2").astype(np.float64) ** 2


@functools.lru_cache(maxsize=4096)
def _g711_rms(encoding: str, data: bytes) -> float:
    """Cached by frame: a phone line carries the same silence frame over and over, and the
    load benchmark feeds hundreds of streams from one process."""
    return float(np.sqrt(_squares(encoding)[np.frombuffer(data, np.uint8)].mean()))


def _rms(stream: _Stream, data: bytes) -> float:
    """RMS of the audio as 16-bit PCM; G.711 through a table of squared sample values."""
    if not data:
        return 0.0
    assert stream.fmt is not None and stream.to_pcm is not None
    if stream.fmt.encoding in ("mulaw", "alaw"):
        return _g711_rms(stream.fmt.encoding, data)
    samples = np.frombuffer(stream.to_pcm.process(data), "<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


class SonioxEmulator(ServedEmulator):
    """``async with SonioxEmulator(utterances=[...]) as sx:`` then use ``sx.url``."""

    def __init__(
        self,
        *,
        utterances: list[str] | None = None,
        by_call: dict[str, list[str]] | None = None,
        api_key: str = "test-soniox-key",
        endpoint_ms: float = 500.0,
        word_ms: float = 200.0,
        energy_threshold: float = 300.0,
        idle_timeout_s: float = 20.0,
        faults: Faults | None = None,
        final_after_ms: float | None = None,
    ) -> None:
        self.utterances = list(utterances or [])
        # Scripts per call, chosen by the config's client_reference_id (the call id).
        self.by_call = {k: list(v) for k, v in (by_call or {}).items()}
        self._next: dict[str | None, int] = {}
        self.api_key = api_key
        self.endpoint_ms = endpoint_ms
        self.final_after_ms = final_after_ms
        self.word_ms = word_ms
        self.energy_threshold = energy_threshold
        self.idle_timeout_s = idle_timeout_s
        self.faults = faults or Faults()
        self.streams: list[_Stream] = []
        self.server = LoopbackServer(self._app())

    @property
    def url(self) -> str:
        return f"{self.server.ws_url}/transcribe-websocket"

    @property
    def configs(self) -> list[dict[str, Any]]:
        return [s.config for s in self.streams]

    def _app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.routing import WebSocketRoute

        return Starlette(routes=[WebSocketRoute("/transcribe-websocket", self._handle)])

    # -- connection ---------------------------------------------------------------------------

    async def _handle(self, websocket: Any) -> None:
        from starlette.responses import JSONResponse

        header = websocket.headers.get("authorization")
        protocols = [
            p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")
        ]
        subprotocol_key = (
            protocols[1] if len(protocols) > 1 and protocols[0] == "soniox-api-key" else None
        )
        if self.faults.refuse_handshake is not None or (
            header is not None and header != f"Bearer {self.api_key}"
        ):
            status = self.faults.refuse_handshake or 401
            body = {"error_code": status, "error_message": "Invalid API key."}
            await websocket.send_denial_response(JSONResponse(body, status_code=status))
            return
        await websocket.accept(subprotocol="soniox-api-key" if subprotocol_key else None)
        stream = _Stream(
            id=len(self.streams) + 1, websocket=websocket, last_input=anyio.current_time()
        )
        self.streams.append(stream)
        authed = header is not None or subprotocol_key == self.api_key
        rejection: _Reject | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_idle, stream, tg.cancel_scope)
            try:
                await self._configure(stream, authed)
                await self._serve(stream)
            except _Reject as exc:
                rejection = exc
            tg.cancel_scope.cancel()
        if stream.timed_out:
            rejection = _Reject(
                408, f"Request timeout: no audio or keepalive for {self.idle_timeout_s:g} seconds."
            )
        if rejection is not None:
            await websocket.send_text(
                json.dumps({"error_code": rejection.code, "error_message": rejection.message})
            )
            await websocket.close(code=1000)

    async def _watch_idle(self, stream: _Stream, serving: anyio.CancelScope) -> None:
        """Soniox closes a stream that sent nothing for a while (one timer per stream,
        not a timeout around every receive: the load benchmark feeds hundreds of streams)."""
        while True:
            remaining = stream.last_input + self.idle_timeout_s - anyio.current_time()
            if remaining <= 0:
                break
            await anyio.sleep(remaining)  # input may have arrived meanwhile: check again
        stream.timed_out = True
        serving.cancel()

    async def _receive(self, stream: _Stream) -> dict[str, Any] | None:
        from starlette.websockets import WebSocketDisconnect

        try:
            message = await stream.websocket.receive()
        except WebSocketDisconnect:
            return None
        if message["type"] == "websocket.disconnect":
            return None
        stream.last_input = anyio.current_time()
        return message  # type: ignore[no-any-return]

    async def _configure(self, stream: _Stream, authed: bool) -> None:
        message = await self._receive(stream)
        if message is None:
            return
        try:
            config = json.loads(message.get("text") or "")
        except json.JSONDecodeError:
            raise _Reject(400, "Invalid config message: not JSON.") from None
        if not isinstance(config, dict):
            raise _Reject(400, "Invalid config message.")
        stream.config = config
        if not authed and config.get("api_key") != self.api_key:
            raise _Reject(401, "Invalid API key.")
        if config.get("model") not in MODELS:
            raise _Reject(400, "Invalid model specified.")
        audio_format = config.get("audio_format")
        if audio_format not in RAW_FORMATS | OTHER_FORMATS:
            raise _Reject(400, f"Invalid audio_format: {audio_format!r}.")
        if audio_format not in RAW_FORMATS:
            raise _Reject(400, f"audio_format {audio_format!r} is not emulated.")
        rate, channels = config.get("sample_rate"), config.get("num_channels")
        if not isinstance(rate, int) or not isinstance(channels, int):
            raise _Reject(400, "sample_rate and num_channels are required for raw audio.")
        delay = config.get("max_endpoint_delay_ms", 2000)
        if not isinstance(delay, int | float) or not 500 <= delay <= 3000:
            raise _Reject(400, "max_endpoint_delay_ms must be between 500 and 3000.")
        stream.fmt = AudioFormat(audio_format, rate, channels)
        stream.to_pcm = AudioConverter(stream.fmt, AudioFormat("pcm_s16le", rate, channels))

    async def _serve(self, stream: _Stream) -> None:
        if stream.fmt is None:
            return
        while True:
            message = await self._receive(stream)
            if message is None:
                return
            data, text = message.get("bytes"), message.get("text")
            if (data is not None and len(data) == 0) or text == "":
                await self._finish(stream)
                return
            if data is not None:
                await self._audio(stream, data)
                continue
            try:
                control = json.loads(text or "")
            except json.JSONDecodeError:
                raise _Reject(400, "Invalid control message.") from None
            stream.controls.append(control)
            if control.get("type") == "finalize":
                await self._finalize(stream, "<fin>")
            elif control.get("type") != "keepalive":
                raise _Reject(400, f"Unknown control message type {control.get('type')!r}.")

    # -- recognition --------------------------------------------------------------------------

    def _script(self, stream: _Stream) -> tuple[str | None, list[str]]:
        ref = stream.config.get("client_reference_id")
        if ref in self.by_call:
            return ref, self.by_call[ref]
        return None, self.utterances

    @property
    def next_utterance(self) -> int:
        """Position in the shared script (per-call scripts keep their own)."""
        return self._next.get(None, 0)

    def _words(self, stream: _Stream) -> list[str]:
        key, script = self._script(stream)
        n = self._next.get(key, 0)
        return script[n].split() if n < len(script) else []

    def _tokens(self, stream: _Stream, upto: int, final: bool) -> list[dict[str, Any]]:
        """The words from the first not yet final up to ``upto`` (a final token is sent
        once; non-final ones are re-sent and revised)."""
        assert stream.speech_start is not None
        tokens = []
        words = self._words(stream)
        for i in range(stream.finalized, min(upto, len(words))):
            word = words[i]
            start = stream.speech_start + i * self.word_ms
            tokens.append(
                {
                    "text": (" " if i else "") + word,
                    "start_ms": round(start),
                    "end_ms": round(min(start + self.word_ms, stream.speech_end)),
                    "confidence": 0.95,
                    "is_final": final,
                }
            )
        return tokens

    async def _respond(self, stream: _Stream, tokens: list[dict[str, Any]], **extra: Any) -> None:
        if self.faults.delay_ms:
            await anyio.sleep(self.faults.delay_ms / 1000)
        every = self.faults.malformed_every
        if every and (stream.sent + 1) % every == 0:
            await stream.websocket.send_text('{"tokens": [{"text": ')
        if self.faults.should_drop(stream.sent):
            self.faults.dropped += 1
            raise ConnectionAbortedError("emulated network drop")
        body = {
            "tokens": tokens,
            "final_audio_proc_ms": round(stream.final_ms),
            "total_audio_proc_ms": round(stream.audio_ms),
            **extra,
        }
        await stream.websocket.send_text(json.dumps(body))
        stream.sent += 1

    async def _audio(self, stream: _Stream, data: bytes) -> None:
        assert stream.fmt is not None and stream.to_pcm is not None
        stream.audio_bytes += len(data)
        stream.audio_messages += 1
        whole = len(data) - len(data) % stream.fmt.block_size
        rms = _rms(stream, data[:whole])
        duration = stream.fmt.duration_ms(whole)
        start = stream.audio_ms
        stream.audio_ms += duration
        if rms >= self.energy_threshold:
            if stream.speech_start is None:
                stream.speech_start, stream.speech_ms, stream.revealed = start, 0.0, 0
                stream.finalized = 0
            stream.speech_ms += duration
            stream.speech_end = stream.audio_ms
            shown = min(len(self._words(stream)), 1 + int(stream.speech_ms // self.word_ms))
            if shown > stream.revealed:
                stream.revealed = shown
                await self._respond(stream, self._tokens(stream, shown, final=False))
        elif stream.speech_start is not None and (
            stream.audio_ms - stream.speech_end >= self.endpoint_ms
        ):
            await self._finalize(
                stream, "<end>" if stream.config.get("enable_endpoint_detection") else None
            )
        elif stream.speech_start is not None and self.final_after_ms is not None:
            if stream.audio_ms - stream.speech_end >= self.final_after_ms:
                if stream.finalized < stream.revealed:
                    tokens = self._tokens(stream, stream.revealed, final=True)
                    stream.finalized = stream.revealed
                    stream.final_ms = stream.speech_end
                    await self._respond(stream, tokens)
                else:
                    await self._respond(stream, [])
        elif stream.speech_start is None:
            stream.final_ms = stream.audio_ms

    async def _finalize(self, stream: _Stream, marker: str | None) -> None:
        tokens: list[dict[str, Any]] = []
        in_speech = stream.speech_start is not None
        if in_speech:
            upto = max(stream.revealed, 1) if self._words(stream) else 0
            tokens = self._tokens(stream, upto, final=True)
        final_ms = stream.audio_ms if marker == "<fin>" else stream.speech_end
        if marker is not None:
            tokens.append({"text": marker, "is_final": True})
        if tokens:
            await self._respond(stream, tokens)  # a drop here loses nothing of the script
        if in_speech:  # the utterance is final only once its finals were sent
            key, _ = self._script(stream)
            self._next[key] = self._next.get(key, 0) + 1
            stream.speech_start = None
        stream.final_ms = final_ms

    async def _finish(self, stream: _Stream) -> None:
        await self._finalize(stream, None)
        await self._respond(stream, [], finished=True)
        await stream.websocket.close(code=1000)
