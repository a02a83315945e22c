"""Open a provider's WebSocket the same way for every plugin.

A refused handshake or a network failure becomes a voicekit error through the one
mapping of :mod:`voicekit.provider_errors` (a refused key names the environment variable
to check, never the key; 429, 5xx and network trouble are retryable), and connecting is
tried again as :class:`voicekit.retry.RetryPolicy` says. Compression is off: audio does
not compress, and permessage-deflate costs CPU on every frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
from websockets.protocol import Side, State
from websockets.uri import parse_uri

from voicekit.provider_errors import network_error, retry_after_s, status_error
from voicekit.retry import RetryPolicy
from voicekit.tls import client_tls
from voicekit.ws_frames import client_frame

__all__ = ["close_websocket", "connect_websocket", "send_message", "write_message_now"]


def _secure(url: str) -> bool:
    """Whether websockets will open ``url`` with TLS (it reads the scheme its own way:
    ``WSS://`` is secure); a URL it cannot parse fails in ``connect`` with its own error."""
    try:
        return parse_uri(url).secure
    except InvalidURI:
        return False


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
                ssl=client_tls() if _secure(url) else None,
            )
    except InvalidStatus as exc:
        response = exc.response
        body = bytes(response.body or b"").decode("utf-8", "replace")
        raise status_error(
            response.status_code,
            f"{label} refused the connection (HTTP {response.status_code})",
            provider=provider,
            key_env=key_env,
            retry_after=retry_after_s(response.headers),
            detail=body,
        ) from None
    except (OSError, TimeoutError, websockets.InvalidHandshake, ConnectionClosed) as exc:
        raise network_error(exc, provider=provider, label=label) from None


async def connect_websocket(
    url: str,
    headers: Mapping[str, str],
    *,
    provider: str,
    label: str,
    key_env: str,
    open_timeout_s: float,
    max_size: int = 2**22,
    policy: RetryPolicy | None = None,
) -> Any:
    """A connected ``websockets`` client connection, tried again as ``policy`` says
    (default: 4 tries): a refused key is not retried, a rate limit or an outage is."""
    policy = policy or RetryPolicy(attempts=4, base_delay_s=0.1)
    return await policy.call(
        lambda: _open(
            url,
            headers,
            provider=provider,
            label=label,
            key_env=key_env,
            open_timeout_s=open_timeout_s,
            max_size=max_size,
        )
    )


async def send_message(ws: Any, message: bytes | str) -> None:
    """``await ws.send(message)``, written at once when nothing stands in the way.

    A call streams 50 audio messages a second to its STT, and ``send`` spends about a
    third of its time per message on its context manager and drain check even when the
    socket is open and its buffer empty. Then this writes the frame directly
    (:func:`write_message_now`); otherwise (closing, a fragmented send under way, the
    transport's buffer above its high-water mark) it awaits ``send``, which waits for the
    buffer to drain or raises ``ConnectionClosed``.
    """
    if not write_message_now(ws, message):
        await ws.send(message)


def write_message_now(ws: Any, message: bytes | str) -> bool:
    """Write ``message`` on ``ws`` at once if nothing stands in the way; False, with
    nothing written, when it would have to wait (closing, a fragmented send under way, the
    transport's buffer above its high-water mark).

    A failed write aborts the connection and raises ``OSError``, as ``send`` would have
    failed. It reads the attributes of ``websockets.asyncio`` connections (checked with
    websockets 17); for any connection without them it returns False. On a client
    connection with no extension (every provider connection: compression is off) and
    nothing of websockets' own waiting to go out, the frame is built here
    (:func:`client_frame`), in less than half the time of websockets' general framing.
    """
    protocol: Any = getattr(ws, "protocol", None)
    if (
        getattr(protocol, "state", None) is not State.OPEN
        or getattr(ws, "paused", True)
        or getattr(ws, "send_in_progress", False) is not None
        or not hasattr(ws, "send_data")
    ):
        return False
    payload = message.encode() if isinstance(message, str) else message
    opcode = 0x1 if isinstance(message, str) else 0x2
    frame: bytes | None = None
    if (
        getattr(protocol, "side", None) is Side.CLIENT  # so a websockets protocol
        and not protocol.extensions
        and not protocol.writes
    ):
        frame = client_frame(opcode, payload)
    elif opcode == 0x1:
        protocol.send_text(payload)
    else:
        protocol.send_binary(payload)
    try:
        if frame is not None:
            ws.transport.write(frame)
        else:
            ws.send_data()
    except Exception as exc:
        ws.transport.abort()
        raise OSError(f"WebSocket write failed: {exc}") from exc
    return True


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
