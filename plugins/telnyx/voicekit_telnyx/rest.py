"""Telnyx Call Control v2 (PROTOCOLS.md §3b) on one pooled httpx client.

429 and 5xx answers are retried with backoff; other errors become :class:`TelnyxError`
carrying Telnyx's own code, title and detail. Hanging up a call that has already ended
(code 90018) counts as done.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import anyio
import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from voicekit.errors import ProviderAuthError, ProviderError

__all__ = ["CALL_ALREADY_ENDED", "TelnyxClient", "TelnyxError"]

logger = logging.getLogger(__name__)
PROVIDER = "telnyx"
CALL_ALREADY_ENDED = "90018"


class TelnyxError(ProviderError):
    """A Call Control error with Telnyx's ``code`` (a string), ``title`` and ``detail``."""

    def __init__(
        self, message: str, *, status_code: int, code: str | None, title: str, detail: str
    ) -> None:
        super().__init__(
            message,
            provider=PROVIDER,
            status_code=status_code,
            retryable=status_code == 429 or status_code >= 500,
        )
        self.code = code
        self.title = title
        self.detail = detail


def _error(action: str, response: httpx.Response) -> ProviderError:
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
    message = f"Telnyx {action} failed: HTTP {status} {code or ''} {title}: {detail}".strip()
    if status in (401, 403):
        return ProviderAuthError(
            message + " (check TELNYX_API_KEY)", provider=PROVIDER, status_code=status
        )
    return TelnyxError(message, status_code=status, code=code, title=title, detail=detail)


class TelnyxClient:
    def __init__(self, *, api_key: str, base_url: str, timeout: float, attempts: int = 4):
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            timeout=httpx.Timeout(timeout),
        )
        self._attempts = attempts

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post(self, path: str, body: dict[str, Any], action: str) -> dict[str, Any]:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=0.2, max=3.0),
            retry=retry_if_exception(lambda e: isinstance(e, ProviderError) and e.retryable),
            sleep=anyio.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    response = await self._client.post(path, json=body)
                except httpx.HTTPError as exc:
                    raise ProviderError(
                        f"Telnyx {action}: {type(exc).__name__}: {exc}",
                        provider=PROVIDER,
                        retryable=True,
                    ) from None
                if response.status_code >= 400:
                    raise _error(action, response)
                data = response.json().get("data", {})
                return data if isinstance(data, dict) else {}
        raise AssertionError("unreachable")  # pragma: no cover

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
        except TelnyxError as exc:
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
