"""Request body limits, enforced while reading, for every HTTP route of the app.

Webhook routes must read the whole body before they can check its signature, so without a
cap an unauthenticated client decides how much memory the server spends (a 200 MB body
took the process to 665 MB). :class:`BodyLimit` wraps the whole app, so every route a
telephony plugin adds is covered without the plugin doing anything: a declared
``Content-Length`` over the limit is refused before a byte is read, and a body that grows
past it while streaming in (chunked, or lying about its length) is refused the moment it
does. Either way the answer is 413 and the connection is closed.

The limit is counted as the route reads, not by reading the body first: a route can
answer from the headers alone (an unsigned webhook is refused before its body arrives)
and the body is held once, by the route, not also here.
"""

from __future__ import annotations

import logging
from typing import Any

from ..lograte import FoldedWarning

__all__ = ["BodyLimit"]

logger = logging.getLogger(__name__)


class BodyLimit:
    """ASGI middleware: HTTP request bodies of at most ``max_bytes``, else 413."""

    lifespan: Any = None  # the wrapped app's lifespan, for a parent app to run

    def __init__(self, app: Any, max_bytes: int) -> None:
        from starlette.requests import ClientDisconnect  # starlette loads with the server

        self.app = app
        self.max_bytes = max_bytes
        self._client_disconnect = ClientDisconnect
        self._refusals = FoldedWarning(logger)  # a client sending huge bodies cannot flood

    def __getattr__(self, name: str) -> Any:  # app.state and friends, as on the wrapped app
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send, f"declares {declared} bytes")
            return
        received = 0
        refused = False
        disconnected = False

        async def limited_receive() -> Any:
            nonlocal received, refused, disconnected
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    await self._refuse(scope, send, f"sent more than {self.max_bytes} bytes")
                    return {"type": "http.disconnect"}  # no more of this body, for the route
            elif message["type"] == "http.disconnect":
                disconnected = True
            return message

        async def guarded_send(message: Any) -> None:
            if not refused:  # after a 413 the route has nothing left to say
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception as exc:
            if not (isinstance(exc, self._client_disconnect) and (refused or disconnected)):
                raise
            # A route reading a body that will not come (refused here, or the client left
            # or timed out mid-body): nobody to answer, and nothing for uvicorn to log.

    async def _refuse(self, scope: Any, send: Any, why: str) -> None:
        client = scope.get("client")
        self._refusals.warning(
            "refused a request to %s from %s: its body %s (limit [server] max_body_bytes = %d)",
            scope.get("path", "?"),
            client[0] if client else "?",
            why,
            self.max_bytes,
        )
        payload = b'{"error": "request body too large"}'
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _content_length(scope: Any) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP parser rejects these before the app sees them
    return None
