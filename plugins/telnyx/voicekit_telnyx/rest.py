"""Telnyx Call Control v2 (PROTOCOLS.md §3b) on one pooled httpx client.

Errors go through the core's one mapping (:mod:`voicekit.provider_errors`), keeping
Telnyx's own code on the error; 429 and 5xx answers are retried as the provider's
:class:`~voicekit.retry.RetryPolicy` says, honouring ``retry-after``. Hanging up a call
that has already ended (code 90018) counts as done.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx

from voicekit.errors import ProviderError
from voicekit.provider_errors import network_error, retry_after_s, status_error
from voicekit.retry import RetryPolicy
from voicekit.tls import HTTP1_ALPN, client_tls

__all__ = ["CALL_ALREADY_ENDED", "TelnyxClient"]

logger = logging.getLogger(__name__)
PROVIDER = "telnyx"
CALL_ALREADY_ENDED = "90018"


def _error(action: str, response: httpx.Response) -> ProviderError:
    """Telnyx's error body (``{"errors": [{"code", "title", "detail"}]}``) through the one
    status mapping; ``code`` (a string, e.g. ``"90018"``) is kept on the error."""
    status = response.status_code
    code, title, detail = None, response.reason_phrase, ""
    try:
        errors = response.json().get("errors") or []
        if errors and isinstance(errors[0], dict):
            code = str(errors[0].get("code")) if errors[0].get("code") is not None else None
            title = str(errors[0].get("title", title))
            detail = str(errors[0].get("detail", ""))
    except (ValueError, AttributeError):
        pass
    return status_error(
        status,
        f"Telnyx {action} failed: HTTP {status} {code or ''} {title}".replace("  ", " "),
        provider=PROVIDER,
        key_env="TELNYX_API_KEY",
        retry_after=retry_after_s(response.headers),
        code=code,
        detail=detail,
    )


class TelnyxClient:
    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout: float,
        policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            timeout=httpx.Timeout(timeout),
            verify=client_tls(HTTP1_ALPN),
            transport=transport,
        )
        self.policy = policy or RetryPolicy(attempts=4)
        self._base_url = base_url

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post(self, path: str, body: dict[str, Any], action: str) -> dict[str, Any]:
        async def post() -> dict[str, Any]:
            try:
                response = await self._client.post(path, json=body)
            except httpx.HTTPError as exc:
                label = f"Telnyx at {self._base_url} ({action})"
                raise network_error(exc, provider=PROVIDER, label=label) from None
            if response.status_code >= 400:
                raise _error(action, response)
            data = response.json().get("data", {})
            return data if isinstance(data, dict) else {}

        result: dict[str, Any] = await self.policy.call(post)
        return result

    async def command(self, call_control_id: str, action: str, **body: Any) -> dict[str, Any]:
        """``POST /calls/{id}/actions/{action}`` with the non-None fields of ``body``."""
        payload = {k: v for k, v in body.items() if v is not None}
        # The id comes from a webhook: escaped, it stays one path segment under /calls.
        path = f"calls/{quote(call_control_id, safe='')}/actions/{quote(action, safe='')}"
        return await self._post(path, payload, action)

    async def answer(self, call_control_id: str, **body: Any) -> dict[str, Any]:
        return await self.command(call_control_id, "answer", **body)

    async def hangup(self, call_control_id: str, **body: Any) -> None:
        try:
            await self.command(call_control_id, "hangup", **body)
        except ProviderError as exc:
            if exc.code != CALL_ALREADY_ENDED:
                raise
            logger.info("call=%s: hang-up: the call had already ended", call_control_id)

    async def reject(self, call_control_id: str, cause: str = "CALL_REJECTED") -> None:
        await self.command(call_control_id, "reject", cause=cause)

    async def transfer(self, call_control_id: str, to: str, **body: Any) -> None:
        await self.command(call_control_id, "transfer", to=to, **body)

    async def dial(self, **body: Any) -> dict[str, Any]:
        """``POST /calls``; needs ``connection_id``, ``from`` (pass ``from_``) and ``to``."""
        if "from_" in body:
            body["from"] = body.pop("from_")
        return await self._post("calls", {k: v for k, v in body.items() if v is not None}, "dial")

    async def playback_start(self, call_control_id: str, **body: Any) -> None:
        await self.command(call_control_id, "playback_start", **body)

    async def playback_stop(self, call_control_id: str, stop: str = "all") -> None:
        await self.command(call_control_id, "playback_stop", stop=stop)

    async def record_start(
        self, call_control_id: str, *, format: str = "wav", channels: str = "dual", **body: Any
    ) -> None:
        await self.command(
            call_control_id, "record_start", format=format, channels=channels, **body
        )

    async def record_stop(self, call_control_id: str, **body: Any) -> None:
        await self.command(call_control_id, "record_stop", **body)

    async def streaming_start(self, call_control_id: str, **body: Any) -> None:
        await self.command(call_control_id, "streaming_start", **body)

    async def streaming_stop(self, call_control_id: str, **body: Any) -> None:
        await self.command(call_control_id, "streaming_stop", **body)
