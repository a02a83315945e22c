"""Function nodes' webhooks: one HTTP request, its JSON answer saved into variables.

Bounded in every direction a webhook can hurt a call: a timeout per attempt, retries only
for idempotent methods (a POST that timed out may have booked the appointment), no
redirects (a redirect could point inside the network), at most ``MAX_RESPONSE_BYTES``
read, destinations checked by the SSRF guard. Secrets from ``{{env.NAME}}`` go into the
request only; log lines name the method, host and status, never a URL, header or body.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from voicekit import logsafe
from voicekit.errors import ProviderError, ProviderUnavailable
from voicekit.flows.model import FunctionNode
from voicekit.flows.ssrf import RefusedDestination, Resolver, resolve_public, system_resolver
from voicekit.flows.templates import ENV_PREFIX, names_in, process_env, render_url, render_value
from voicekit.provider_errors import network_error, status_error
from voicekit.retry import RetryPolicy
from voicekit.tls import HTTP1_ALPN, client_tls

__all__ = ["MAX_RESPONSE_BYTES", "WebhookResult", "WebhookRunner", "field_at"]

logger = logging.getLogger(__name__)

# httpx logs every request's full URL at INFO; a webhook URL can hold a secret from the
# environment or the caller's words. While a webhook is sent, those lines are dropped.
_SENDING = contextvars.ContextVar("voicekit_webhook_sending", default=False)


class _QuietWhileSending(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _SENDING.get()


# A logger's filters do not apply to its children: each logger that writes lines is named.
_QUIETED = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy")


def _install_filter() -> None:
    for name in _QUIETED:
        quieted = logging.getLogger(name)
        if not any(isinstance(f, _QuietWhileSending) for f in quieted.filters):
            quieted.addFilter(_QuietWhileSending())


_install_filter()

MAX_RESPONSE_BYTES = 256 * 1024
IDEMPOTENT = frozenset({"GET", "PUT", "DELETE"})
_MISSING = object()


@dataclass(slots=True)
class WebhookResult:
    """What a function node's request came to: the variables it saves, or why not."""

    ok: bool
    saved: dict[str, Any] = field(default_factory=dict)
    status: int | None = None
    error: str | None = None
    ms: float = 0.0


def field_at(data: Any, path: str) -> Any:
    """``data``'s field at a dotted path (``booking.id``, ``slots.0.start``); a sentinel
    object when there is none."""
    value = data
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


class WebhookRunner:
    """Runs function nodes' requests for every call of a server (one HTTP client)."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient | None = None,
        resolve: Resolver = system_resolver,
        env: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._client = client or httpx.AsyncClient(
            follow_redirects=False, trust_env=False, verify=client_tls(HTTP1_ALPN)
        )
        self._owns_client = client is None
        self._resolve = resolve
        self._env = env
        self._retry = retry or RetryPolicy(base_delay_s=0.2, max_delay_s=1.0)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def run(
        self,
        node: FunctionNode,
        variables: Mapping[str, Any],
        *,
        allow_private: bool,
        call_id: str,
    ) -> WebhookResult:
        started = time.perf_counter()
        env = self._env if self._env is not None else process_env()
        env_names = [
            n[len(ENV_PREFIX) :]
            for n in names_in([node.url, node.headers, node.body])
            if n.startswith(ENV_PREFIX)
        ]
        unset = sorted({n for n in env_names if not env.get(n)})
        if unset:
            error = f"environment variable(s) not set: {', '.join(unset)}"
            logger.error("call=%s: webhook of node %r not sent: %s", call_id, node.id, error)
            return WebhookResult(False, error=error)
        logsafe.register_secrets(env.get(n) for n in env_names)
        token = _SENDING.set(True)
        try:
            url = httpx.URL(render_url(node.url, variables, env=env))
            if url.scheme not in ("http", "https") or not url.host:
                raise RefusedDestination("the URL is not an http(s) URL with a host")
            headers = {
                k: "" if (value := render_value(v, variables, env=env)) is None else str(value)
                for k, v in node.headers.items()
            }
            body = render_value(node.body, variables, env=env) if node.body is not None else None
            policy = self._retry.with_attempts(
                1 + (node.retries if node.method in IDEMPOTENT else 0)
            )
            # Each attempt has a deadline (httpx's timeout is per read: a server sending a
            # byte every second would never time out), and so do all of them together.
            with anyio.fail_after(node.timeout_s * policy.attempts + policy.max_delay_s * 2):
                response = await policy.call(
                    lambda: self._send(node, url, headers, body, allow_private=allow_private)
                )
        except (
            RefusedDestination,
            ProviderError,
            httpx.InvalidURL,
            ValueError,
            TimeoutError,
        ) as exc:
            ms = (time.perf_counter() - started) * 1000
            status = exc.status_code if isinstance(exc, ProviderError) else None
            logger.warning(
                "call=%s: webhook of node %r failed after %.0f ms: %s",
                call_id,
                node.id,
                ms,
                _safe_reason(exc),
            )
            return WebhookResult(False, status=status, error=_safe_reason(exc), ms=ms)
        finally:
            _SENDING.reset(token)
        status, content = response
        ms = (time.perf_counter() - started) * 1000
        logger.info(
            "call=%s: webhook of node %r: %s %s -> %d in %.0f ms",
            call_id,
            node.id,
            node.method,
            url.host,
            status,
            ms,
        )
        if not node.save:
            return WebhookResult(True, status=status, ms=ms)
        try:
            data = json.loads(content)
        except (ValueError, RecursionError):
            return WebhookResult(False, status=status, error="the answer is not JSON", ms=ms)
        saved: dict[str, Any] = {}
        for name, path in node.save.items():
            value = field_at(data, path)
            if value is _MISSING:
                error = f"the answer has no field {path!r} (for {name})"
                return WebhookResult(False, status=status, error=error, ms=ms)
            saved[name] = value
        return WebhookResult(True, saved=saved, status=status, ms=ms)

    async def _send(
        self,
        node: FunctionNode,
        url: httpx.URL,
        headers: dict[str, str],
        body: Any,
        *,
        allow_private: bool,
    ) -> tuple[int, bytes]:
        try:
            with anyio.fail_after(node.timeout_s):  # httpx's timeout is per read
                status, content = await self._exchange(node, url, headers, body, allow_private)
        except httpx.HTTPError as exc:
            label = f"the webhook host {url.host}"
            raise network_error(exc, provider="webhook", label=label) from None
        except TimeoutError:
            raise ProviderUnavailable(
                f"no complete answer within {node.timeout_s:g} s", provider="webhook"
            ) from None
        if not 200 <= status < 300:
            raise status_error(status, f"the webhook answered HTTP {status}", provider="webhook")
        return status, content

    async def _exchange(
        self,
        node: FunctionNode,
        url: httpx.URL,
        headers: dict[str, str],
        body: Any,
        allow_private: bool,
    ) -> tuple[int, bytes]:
        """One request and its answer, read up to the size cap."""
        target, extensions = url, {}
        # No compression: the size cap must count the bytes that arrive, not what they
        # inflate to.
        headers = {**headers, "Accept-Encoding": "identity"}
        if not allow_private:
            address = await resolve_public(url.host, url.port or _default_port(url), self._resolve)
            headers = {**headers, "Host": url.netloc.decode("ascii")}
            target = url.copy_with(host=address)
            if url.scheme == "https":
                extensions = {"sni_hostname": url.host}
        kwargs: dict[str, Any] = {}
        if body is not None:
            if node.method == "GET":
                kwargs["params"] = {k: _query_value(v) for k, v in body.items()}
            else:
                kwargs["json"] = body
        request = self._client.build_request(
            node.method,
            target,
            headers=headers,
            timeout=node.timeout_s,
            extensions=extensions,
            **kwargs,
        )
        response = await self._client.send(request, stream=True)
        try:
            content = bytearray()
            async for chunk in response.aiter_bytes():
                content += chunk
                if len(content) > MAX_RESPONSE_BYTES:
                    raise ProviderError(
                        f"the answer is over {MAX_RESPONSE_BYTES} bytes", provider="webhook"
                    )
        finally:
            await response.aclose()
        return response.status_code, bytes(content)


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _safe_reason(exc: BaseException) -> str:
    """Why a webhook failed, in words that carry no URL, header or body (they may hold a
    secret from the environment)."""
    if isinstance(exc, RefusedDestination):
        return f"destination refused: {exc}"
    if isinstance(exc, ProviderError):
        if exc.status_code is not None:
            return f"HTTP {exc.status_code}"
        return str(exc).split(":")[0] if "cannot reach" in str(exc) else str(exc)
    if isinstance(exc, httpx.InvalidURL):
        return "the URL is not valid"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ValueError) and "URL segment" in str(exc):
        return str(exc)
    return type(exc).__name__
