"""Open a provider's WebSocket the same way for every plugin.

Connection failures become voicekit errors with the right retry semantics: a refused
key (401/403) is a :class:`ProviderAuthError` naming the environment variable to check
(never the key), 429 and 5xx are retryable, network trouble is retryable. Retries use
bounded exponential backoff. Compression is off: audio does not compress, and
permessage-deflate costs CPU on every frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import websockets
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.protocol import State

from voicekit.errors import ProviderAuthError, ProviderError

__all__ = ["close_websocket", "connect_websocket", "retryable", "send_message"]


def retryable(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and exc.retryable


async def _open(
    url: str,
    headers: Mapping[str, str],
    *,
    provider: str,
    label: str,
    key_env: str,
    open_timeout_s: float,
    max_size: int,
) -> Any:
    try:
        with anyio.fail_after(open_timeout_s):
            return await websockets.connect(
                url,
                additional_headers=dict(headers),
                max_size=max_size,
                ping_interval=20,
                compression=None,
            )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            raise ProviderAuthError(
                f"{label} refused the API key (HTTP {status}); check {key_env}",
                provider=provider,
                status_code=status,
            ) from None
        raise ProviderError(
            f"{label} refused the connection (HTTP {status})",
            provider=provider,
            status_code=status,
            retryable=status == 429 or status >= 500,
        ) from None
    except (OSError, TimeoutError, websockets.InvalidHandshake, ConnectionClosed) as exc:
        raise ProviderError(
            f"cannot reach {label}: {type(exc).__name__}: {exc}", provider=provider, retryable=True
        ) from None


async def connect_websocket(
    url: str,
    headers: Mapping[str, str],
    *,
    provider: str,
    label: str,
    key_env: str,
    open_timeout_s: float,
    max_size: int = 2**22,
    attempts: int = 4,
) -> Any:
    """A connected ``websockets`` client connection, after up to ``attempts`` tries."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.1, max=2.0),
        retry=retry_if_exception(retryable),
        sleep=anyio.sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await _open(
                url,
                headers,
                provider=provider,
                label=label,
                key_env=key_env,
                open_timeout_s=open_timeout_s,
                max_size=max_size,
            )
    raise AssertionError("unreachable")  # pragma: no cover


async def send_message(ws: Any, message: bytes | str) -> None:
    """``await ws.send(message)``, written at once when nothing stands in the way.

    A call streams 50 audio messages a second to its STT, and ``send`` spends about a
    third of its time per message on its context manager and drain check even when the
    socket is open and its buffer empty. Then this writes the frame directly; otherwise
    (closing, a fragmented send under way, the transport's buffer above its high-water
    mark) it awaits ``send``, which waits for the buffer to drain or raises
    ``ConnectionClosed``. A failed write aborts the connection and raises ``OSError``, as
    ``send`` would have failed. It reads the attributes of ``websockets.asyncio``
    connections (checked with websockets 17); any connection without them goes through
    ``send``.
    """
    protocol: Any = getattr(ws, "protocol", None)
    if (
        getattr(protocol, "state", None) is not State.OPEN
        or getattr(ws, "paused", True)
        or getattr(ws, "send_in_progress", False) is not None
        or not hasattr(ws, "send_data")
    ):  # busy, closing, or a websockets release without these: the documented way
        await ws.send(message)
        return
    if isinstance(message, str):
        protocol.send_text(message.encode())
    else:
        protocol.send_binary(message)
    try:
        ws.send_data()
    except Exception as exc:
        ws.transport.abort()
        raise OSError(f"WebSocket write failed: {exc}") from exc


async def close_websocket(ws: Any, timeout_s: float = 1.0) -> None:
    """Close ``ws`` with the closing handshake if that completes within ``timeout_s``;
    otherwise, or if the caller is cancelled meanwhile, abort the connection.

    Either way the socket is gone when this returns (or raises the cancellation), so a
    provider's ``aclose`` stays bounded under any timeout its caller puts around it.
    """
    if ws is None:
        return
    closed = False
    try:
        with anyio.move_on_after(timeout_s):
            await ws.close()
            closed = True
    except (ConnectionClosed, OSError):
        closed = True
    finally:
        if not closed:
            transport = getattr(ws, "transport", None)
            if transport is not None:
                transport.abort()
