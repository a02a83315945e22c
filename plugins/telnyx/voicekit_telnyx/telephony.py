"""The ``telnyx`` telephony provider: webhooks, the media WebSocket, and call control.

Routes (mounted under ``/telephony/telnyx``):

- ``POST /webhook``: the Ed25519 signature and timestamp are checked before anything
  else (401 on failure), then the event's shape (400 on failure; the body size is capped
  by the server before it gets here). ``call.initiated`` (incoming) is answered with a
  media stream URL and a signed, expiring token for that call, or rejected as busy when
  the server is draining or at ``max_calls``; ``call.hangup`` ends the call;
  answering-machine results apply the voicemail policy; ``streaming.failed`` is logged
  and the call hung up; other events are acknowledged and ignored; a redelivered event
  (same id) is handled once.
- ``WS /media``: the token comes in the ``x-telnyx-streaming-auth-token`` header, in the
  ``connected`` frame, or (with ``media_token_in_url``) in the URL. A connection whose
  token is invalid, expired, for a call that is not live, or for a call whose media is
  already connected is closed with 1008 before any audio is read.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import anyio
from pydantic import ValidationError

from voicekit.audio import AudioFormat
from voicekit.errors import CallRefused, ConfigError
from voicekit.lograte import FoldedWarning
from voicekit.provider import ProviderSettings
from voicekit.telephony import CallHost, Telephony
from voicekit_telnyx.events import CallPayload, TelnyxWebhook, describe_invalid
from voicekit_telnyx.frames import CODECS, BadFrame, Connected, parse_frame
from voicekit_telnyx.media import StreamRejected, TelnyxMediaStream
from voicekit_telnyx.replay import SeenEvents
from voicekit_telnyx.rest import TelnyxClient
from voicekit_telnyx.settings import TelnyxSettings
from voicekit_telnyx.webhooks import (
    WebhookVerificationError,
    decode_public_key,
    signature_headers,
    verify_signed_body,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["TelnyxTelephony"]

logger = logging.getLogger(__name__)
MACHINE_RESULTS = {"machine", "fax_detected"}
TOKEN_HEADER = "x-telnyx-streaming-auth-token"
CONNECTED_FRAME_WAIT_S = 5.0  # a socket with no token in its headers must show it this soon


class TelnyxTelephony(Telephony[TelnyxSettings]):
    name: ClassVar[str] = "telnyx"
    Settings: ClassVar[type[ProviderSettings]] = TelnyxSettings

    def __init__(
        self,
        settings: TelnyxSettings | None = None,
        *,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``http_transport`` replaces the network for Call Control requests (a test
        answering them in memory, with ``httpx.ASGITransport`` or ``httpx.MockTransport``)."""
        super().__init__(settings)
        s = self.settings
        self.public_key = decode_public_key(s.public_key.get_secret_value())
        self._client: TelnyxClient | None = None
        self._http_transport = http_transport
        self._seen = SeenEvents(s.webhook_tolerance_s)
        self._calls: dict[str, dict[str, Any]] = {}  # what the webhooks told us, per call
        self.rejected_webhooks = 0
        self._rejections = FoldedWarning(logger)  # unsigned requests cannot flood the log

    @classmethod
    def stream_formats(cls, options: Mapping[str, Any]) -> tuple[AudioFormat, ...]:
        """The codec of ``options`` (``codec``; PCMU by default), which every call uses."""
        codec = str(options.get("codec", "PCMU")).upper()
        return (CODECS[codec],) if codec in CODECS else ()

    @property
    def client(self) -> TelnyxClient:
        if self._client is None:
            s = self.settings
            self._client = TelnyxClient(
                api_key=s.api_key.get_secret_value(),
                base_url=s.base_url,
                timeout=s.timeout,
                policy=self.retry_policy,
                transport=self._http_transport,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- call control ---------------------------------------------------------------------

    async def hangup(self, call_id: str) -> None:
        await self.client.hangup(call_id)

    async def transfer(self, call_id: str, to: str) -> None:
        await self.client.transfer(call_id, to)

    async def dial(self, to: str, *, from_number: str | None = None, **options: Any) -> str:
        """Place a call; ``host`` (a CallHost) is needed to sign its media stream URL."""
        host: CallHost = options.pop("host")
        s = self.settings
        self.check_dial(from_number)
        caller = from_number or s.from_number
        assert caller is not None
        # The call id only exists once Telnyx answers the dial request, but the stream URL
        # goes in that request: the call is reserved (counted against max_calls) and its
        # token signed under a dial id of our own, identified with the call id below.
        dial_id = f"dial-{secrets.token_hex(8)}"
        if not host.reserve_call(dial_id):
            raise CallRefused("not dialling: the server is draining or at [server] max_calls")
        try:
            data = await self.client.dial(
                connection_id=s.connection_id,
                to=to,
                from_=caller,
                webhook_url=f"{host.public_url.rstrip('/')}/telephony/telnyx/webhook",
                answering_machine_detection=None
                if s.answering_machine_detection == "disabled"
                else s.answering_machine_detection,
                **self._stream_params(host, dial_id),
                **options,
            )
        except BaseException:
            host.end_call(dial_id, "dial_failed")
            raise
        call_id = str(data.get("call_control_id", ""))
        host.call_identified(dial_id, call_id)
        self._calls[call_id] = {"direction": "outbound", "to": to, "from": caller}
        return call_id

    def check_dial(self, from_number: str | None = None) -> None:
        """Raise ConfigError unless a call can be dialled (before any server starts)."""
        s = self.settings
        if not s.connection_id:
            raise ConfigError(
                "dialling needs [providers.telnyx] connection_id: the id of your Call "
                "Control application (Mission Control > Voice > Programmable Voice)"
            )
        if not (from_number or s.from_number):
            raise ConfigError(
                "dialling needs a caller id: set [providers.telnyx] from_number (a number "
                "on your Telnyx account, E.164) or pass --from"
            )

    def _stream_params(self, host: CallHost, key: str) -> dict[str, Any]:
        token = host.issue_media_token(key)
        parts = urlsplit(host.public_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = parts.path.rstrip("/") + "/telephony/telnyx/media"
        query = urlencode({"token": token}) if self.settings.media_token_in_url else ""
        url = urlunsplit((scheme, parts.netloc, path, query, ""))
        return {
            "stream_url": url,
            "stream_track": "inbound_track",
            "stream_bidirectional_mode": "rtp",
            "stream_bidirectional_codec": self.settings.codec,
            "stream_auth_token": token,
        }

    # -- routes ---------------------------------------------------------------------------

    def routes(self, host: CallHost) -> Sequence[Any]:
        from starlette.routing import Route, WebSocketRoute

        async def webhook(request: Any) -> Any:
            return await self._webhook(host, request)

        async def media(websocket: Any) -> None:
            await self._media(host, websocket)

        return [Route("/webhook", webhook, methods=["POST"]), WebSocketRoute("/media", media)]

    async def _webhook(self, host: CallHost, request: Any) -> Any:
        from starlette.background import BackgroundTask
        from starlette.responses import JSONResponse

        peer = request.client.host if request.client else "?"
        tolerance = self.settings.webhook_tolerance_s
        try:
            # Headers first: an unsigned or stale request is refused before its body is
            # read, and its connection closed, so the body is never read at all.
            signed = signature_headers(request.headers, tolerance=tolerance)
        except WebhookVerificationError as exc:
            return self._rejected(peer, exc, close=True)
        body = await request.body()  # size-capped by the server's body limit
        try:
            verify_signed_body(body, signed, self.public_key)
        except WebhookVerificationError as exc:
            return self._rejected(peer, exc, close=False)
        try:
            event = TelnyxWebhook.model_validate_json(body)
        except ValidationError as exc:
            logger.warning(
                "ignored a signed Telnyx webhook from %s of an unexpected shape: %s",
                peer,
                describe_invalid(exc),
            )
            return JSONResponse({"error": "not a Telnyx event"}, status_code=400)
        event_id = event.data.id
        if not self._seen.first_time(event_id):
            return JSONResponse({"ok": True, "duplicate": True})
        task = self._dispatch(host, event.data.event_type, event.data.payload or CallPayload())
        return JSONResponse({"ok": True}, background=BackgroundTask(task) if task else None)

    def _rejected(self, peer: str, exc: WebhookVerificationError, *, close: bool) -> Any:
        from starlette.responses import JSONResponse

        self.rejected_webhooks += 1
        self._rejections.warning("rejected a Telnyx webhook from %s: %s", peer, exc)
        headers = {"connection": "close"} if close else None
        return JSONResponse({"error": "invalid signature"}, status_code=401, headers=headers)

    def _dispatch(self, host: CallHost, event_type: str, payload: CallPayload) -> Any:
        call_id = payload.call_control_id
        if not call_id:
            return None  # not about a call voicekit could act on
        if event_type == "call.initiated" and payload.direction == "incoming":
            if not host.reserve_call(call_id):
                logger.warning(
                    "call=%s: rejected as busy: the server is draining or at max_calls", call_id
                )
                return partial(self._quietly, call_id, self.client.reject, call_id, "USER_BUSY")
            self._calls[call_id] = {"direction": "inbound", "from": payload.from_, "to": payload.to}
            return partial(self._answer, host, call_id)
        if event_type == "call.hangup":
            host.end_call(call_id, f"hangup:{payload.hangup_cause or 'unspecified'}")
            self._calls.pop(call_id, None)
        elif event_type in ("call.machine.detection.ended", "call.machine.premium.detection.ended"):
            if payload.result in MACHINE_RESULTS:
                host.machine_detected(call_id)
        elif event_type == "streaming.failed":
            logger.error("call=%s: Telnyx streaming failed: %s", call_id, payload.failure_reason)
            host.end_call(call_id, "streaming_failed")
            return partial(self._quietly, call_id, self.client.hangup, call_id)
        return None

    async def _answer(self, host: CallHost, call_id: str) -> None:
        """Answer with the media stream; a call that cannot be answered stops counting."""
        if not await self._quietly(
            call_id, self.client.answer, call_id, **self._stream_params(host, call_id)
        ):
            host.end_call(call_id, "answer_failed")
            self._calls.pop(call_id, None)

    async def _quietly(
        self, call_id: str, command: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> bool:
        """Run a Call Control command after the webhook answered; log, never raise."""
        try:
            await command(*args, **kwargs)
        except Exception as exc:
            logger.error("call=%s: Telnyx command failed: %s", call_id, exc)
            return False
        return True

    async def _media(self, host: CallHost, websocket: Any) -> None:
        from starlette.websockets import WebSocketDisconnect

        gone = (OSError, RuntimeError, WebSocketDisconnect)
        await websocket.accept()
        token = websocket.headers.get(TOKEN_HEADER)
        if token is None and self.settings.media_token_in_url:
            token = websocket.query_params.get("token")
        if token is None:
            token = await self._token_from_connected_frame(websocket)
        call_id = host.admit_media(token)  # logs the refusal with the call id
        if call_id is None:
            await _close(websocket, 1008, "media token refused", gone)
            return
        s = self.settings
        stream = TelnyxMediaStream(
            websocket,
            call_id=call_id,
            outbound_format=CODECS[s.codec],
            l16_big_endian=s.l16_byte_order == "big",
            details=self._calls.get(call_id),
            max_frame_bytes=host.max_message_bytes,
            gone=(WebSocketDisconnect,),
        )
        try:
            await stream.wait_start()
        except (StreamRejected, TimeoutError) as exc:
            why = str(exc) or "no start frame in time"
            logger.warning("call=%s: media stream refused: %s", call_id, why)
            host.end_call(call_id, "media_refused")
            await _close(websocket, 1008, "media stream refused", gone)
            await self._quietly(call_id, self.client.hangup, call_id)
            return

        handed_on = False  # hung up or transferred by the agent: not to hang up again

        async def hang_up() -> None:
            nonlocal handed_on
            handed_on = True
            await self.client.hangup(call_id)

        async def transfer(to: str) -> None:
            nonlocal handed_on
            await self.client.transfer(call_id, to)
            handed_on = True

        try:
            await host.run_call(stream, hangup=hang_up, transfer=transfer)
        finally:  # even after a bug in the call: never a caller left on a silent line
            if not stream.closed:
                await _close(websocket, 1000, "", gone)
            if not (handed_on or stream.stopped) and call_id in self._calls:
                # The media went away but Telnyx did not end the call (no stop frame, no
                # hang-up webhook yet): the caller would be left on a silent line.
                await self._quietly(call_id, self.client.hangup, call_id)

    async def _token_from_connected_frame(self, websocket: Any) -> str | None:
        """Telnyx also sends the token in its ``connected`` frame (top level or nested)."""
        with anyio.move_on_after(CONNECTED_FRAME_WAIT_S):
            message = await websocket.receive()
            raw = message.get("text") or message.get("bytes")
            if raw:
                try:
                    frame = parse_frame(raw)
                except BadFrame:
                    return None
                if isinstance(frame, Connected):
                    return frame.token
        return None


async def _close(
    websocket: Any, code: int, reason: str, gone: tuple[type[BaseException], ...]
) -> None:
    try:
        await websocket.close(code=code, reason=reason)
    except gone:
        pass  # it closed while we were finishing: nothing left to tell it
