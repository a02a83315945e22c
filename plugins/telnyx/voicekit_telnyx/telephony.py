"""The ``telnyx`` telephony provider: webhooks, the media WebSocket, and call control.

Routes (mounted under ``/telephony/telnyx``):

- ``POST /webhook``: the Ed25519 signature and timestamp are checked before anything
  else (401 on failure). ``call.initiated`` (incoming) is answered with a media stream URL
  carrying a signed, expiring token for that call; ``call.hangup`` ends the session;
  answering-machine results apply the voicemail policy; ``streaming.failed`` is logged and
  the call hung up; other events are acknowledged and ignored; a redelivered event (same
  id) is handled once.
- ``WS /media``: a connection without a valid, unexpired token for its call is closed
  with 1008 before any audio is read.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from voicekit.provider import ProviderSettings
from voicekit.telephony import CallHost, Telephony
from voicekit_telnyx.frames import CODECS
from voicekit_telnyx.media import StreamRejected, TelnyxMediaStream
from voicekit_telnyx.rest import TelnyxClient
from voicekit_telnyx.settings import TelnyxSettings
from voicekit_telnyx.webhooks import WebhookVerificationError, decode_public_key, verify_webhook

__all__ = ["TelnyxTelephony"]

logger = logging.getLogger(__name__)
MACHINE_RESULTS = {"machine", "fax_detected"}
SEEN_EVENTS = 10_000


class TelnyxTelephony(Telephony):
    name: ClassVar[str] = "telnyx"
    Settings: ClassVar[type[ProviderSettings]] = TelnyxSettings

    def __init__(self, settings: ProviderSettings | None = None) -> None:
        super().__init__(settings)
        s = self.settings_
        self.public_key = decode_public_key(s.public_key.get_secret_value())
        self._client: TelnyxClient | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._calls: dict[str, dict[str, Any]] = {}  # what the webhooks told us, per call
        self._dial_ids: dict[str, str] = {}  # our dial id -> Telnyx call id
        self.rejected_webhooks = 0

    @property
    def settings_(self) -> TelnyxSettings:
        assert isinstance(self.settings, TelnyxSettings)
        return self.settings

    @property
    def client(self) -> TelnyxClient:
        if self._client is None:
            s = self.settings_
            self._client = TelnyxClient(
                api_key=s.api_key.get_secret_value(), base_url=s.base_url, timeout=s.timeout
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
        s = self.settings_
        if not s.connection_id:
            raise ValueError("dialling needs providers.telnyx.connection_id")
        caller = from_number or s.from_number
        if not caller:
            raise ValueError("dialling needs a from number (providers.telnyx.from_number)")
        # The call id only exists once Telnyx answers the dial request, but the stream URL
        # goes in that request: sign it for a dial id of our own, mapped to the call id below.
        dial_id = f"dial-{secrets.token_hex(8)}"
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
        call_id = str(data.get("call_control_id", ""))
        self._dial_ids[dial_id] = call_id
        self._calls[call_id] = {"direction": "outbound", "to": to, "from": caller}
        return call_id

    def _stream_params(self, host: CallHost, call_id: str) -> dict[str, Any]:
        token = host.issue_media_token(call_id)
        parts = urlsplit(host.public_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = parts.path.rstrip("/") + "/telephony/telnyx/media"
        url = urlunsplit((scheme, parts.netloc, path, urlencode({"token": token}), ""))
        return {
            "stream_url": url,
            "stream_track": "inbound_track",
            "stream_bidirectional_mode": "rtp",
            "stream_bidirectional_codec": self.settings_.codec,
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

        body = await request.body()
        try:
            verify_webhook(
                body, request.headers, self.public_key, tolerance=self.settings_.webhook_tolerance_s
            )
        except WebhookVerificationError as exc:
            self.rejected_webhooks += 1
            logger.warning(
                "rejected a Telnyx webhook from %s: %s",
                request.client.host if request.client else "?",
                exc,
            )
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        try:
            data = json.loads(body)["data"]
            event_id, event_type = str(data["id"]), str(data["event_type"])
            payload = data.get("payload") or {}
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "not a Telnyx event"}, status_code=400)
        if event_id in self._seen:
            return JSONResponse({"ok": True, "duplicate": True})
        self._seen[event_id] = None
        if len(self._seen) > SEEN_EVENTS:
            self._seen.popitem(last=False)
        task = self._dispatch(host, event_type, payload)
        return JSONResponse({"ok": True}, background=BackgroundTask(task) if task else None)

    def _dispatch(self, host: CallHost, event_type: str, payload: dict[str, Any]) -> Any:
        call_id = str(payload.get("call_control_id", ""))
        if event_type == "call.initiated" and payload.get("direction") == "incoming":
            self._calls[call_id] = {
                "direction": "inbound",
                "from": payload.get("from"),
                "to": payload.get("to"),
            }
            if not host.accepting_calls():
                logger.info("call=%s: refused, the server is not accepting calls", call_id)
                return partial(self._quietly, self.client.reject, call_id, "USER_BUSY")
            return partial(
                self._quietly, self.client.answer, call_id, **self._stream_params(host, call_id)
            )
        if event_type == "call.hangup":
            host.end_call(call_id, f"hangup:{payload.get('hangup_cause', 'unspecified')}")
            self._calls.pop(call_id, None)
        elif event_type in ("call.machine.detection.ended", "call.machine.premium.detection.ended"):
            if str(payload.get("result", "")) in MACHINE_RESULTS:
                host.machine_detected(call_id)
        elif event_type == "streaming.failed":
            logger.error(
                "call=%s: Telnyx streaming failed: %s", call_id, payload.get("failure_reason")
            )
            host.end_call(call_id, "streaming_failed")
            return partial(self._quietly, self.client.hangup, call_id)
        return None

    async def _quietly(
        self, command: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> None:
        """Run a Call Control command after the webhook answered; log, never raise."""
        try:
            await command(*args, **kwargs)
        except Exception as exc:
            logger.error("Telnyx command failed: %s", exc)

    async def _media(self, host: CallHost, websocket: Any) -> None:
        from starlette.websockets import WebSocketDisconnect

        token = websocket.headers.get(
            "x-telnyx-streaming-auth-token"
        ) or websocket.query_params.get("token")
        subject = host.check_media_token(token)
        call_id = self._dial_ids.pop(subject, subject) if subject else None
        await websocket.accept()
        if call_id is None:
            logger.warning("refused a media stream: invalid or expired token")
            await websocket.close(code=1008, reason="invalid or expired media token")
            return
        s = self.settings_
        stream = TelnyxMediaStream(
            websocket,
            call_id=call_id,
            outbound_format=CODECS[s.codec],
            l16_big_endian=s.l16_byte_order == "big",
            details=self._calls.get(call_id),
        )
        try:
            await stream.wait_start()
        except (StreamRejected, TimeoutError) as exc:
            logger.warning("call=%s: media stream refused: %s", call_id, exc)
            await websocket.close(code=1008, reason=str(exc)[:120])
            return

        async def hang_up() -> None:
            await self.client.hangup(call_id)

        await host.run_call(stream, hangup=hang_up)
        if stream.closed:
            return  # Telnyx (or the caller) already closed the socket
        try:
            await websocket.close(code=1000)
        except (OSError, RuntimeError, WebSocketDisconnect):
            pass  # it closed while we were finishing: nothing left to tell it
