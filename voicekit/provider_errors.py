"""One mapping from what a provider answered to :mod:`voicekit.errors`, for every plugin.

An HTTP status (REST, or a refused WebSocket handshake), a provider's error message with a
status inside it, a network failure, or an SDK's exception all become the same errors
with the same rules, so the retry policy (:mod:`voicekit.retry`) can decide once:

========================  =====================================  ==========
what happened             error                                  retryable
========================  =====================================  ==========
401, 403                  ProviderAuthError, naming the key's     no
                          environment variable (never the key)
429                       RateLimited, with ``retry_after``       yes
408, 5xx                  ProviderUnavailable                     yes
network, connect timeout  ProviderUnavailable                     yes
any other status          ProviderError                           no
========================  =====================================  ==========
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

from voicekit.errors import ProviderAuthError, ProviderError, ProviderUnavailable, RateLimited

__all__ = ["MAX_DETAIL_CHARS", "network_error", "retry_after_s", "status_error"]

MAX_DETAIL_CHARS = 300  # of a provider's error body quoted in a message


def retry_after_s(
    headers: Mapping[str, str] | Any | None, *, now: float | None = None
) -> float | None:
    """Seconds from a ``retry-after`` header (delta seconds or an HTTP date), or None."""
    if headers is None:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def status_error(
    status: int | None,
    message: str,
    *,
    provider: str,
    key_env: str | None = None,
    retry_after: float | None = None,
    code: str | None = None,
    detail: str = "",
) -> ProviderError:
    """The error for a provider's answer with HTTP ``status`` (None: no status known).

    ``message`` says what failed ("ElevenLabs refused the connection"), with or without
    the status in it: ``(HTTP 503)`` is added when it does not say ``HTTP 503`` already.
    ``detail`` is what the provider said, quoted (shortened) after it, except for 401
    and 403: a refused key's answer often quotes part of the key, and a secret never
    reaches an error message or a log.
    """
    if status is not None and f"HTTP {status}" not in message:
        message = f"{message} (HTTP {status})"
    text = message if not detail else f"{message}: {detail[:MAX_DETAIL_CHARS]}"
    if status in (401, 403):
        hint = f"; check {key_env}" if key_env else ""
        return ProviderAuthError(
            f"{message}: the key was refused{hint}",
            provider=provider,
            status_code=status,
            code=code,
        )
    if status == 429:
        return RateLimited(
            text, provider=provider, status_code=status, retry_after=retry_after, code=code
        )
    if status == 408 or (status is not None and status >= 500):
        return ProviderUnavailable(
            text, provider=provider, status_code=status, retry_after=retry_after, code=code
        )
    return ProviderError(text, provider=provider, status_code=status, code=code)


def network_error(exc: BaseException, *, provider: str, label: str) -> ProviderUnavailable:
    """A connection that failed below HTTP (refused, reset, DNS, TLS, connect timeout)."""
    return ProviderUnavailable(
        f"cannot reach {label}: {type(exc).__name__}: {exc}", provider=provider
    )
