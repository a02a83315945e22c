"""Media sockets go straight to their endpoint; everything else through the app."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.routing import Route, WebSocketRoute

from voicekit.server.media_path import MediaFastPath

pytestmark = pytest.mark.anyio


async def test_a_media_socket_skips_the_app_and_other_requests_do_not() -> None:
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append("app " + scope["path"])

    async def media(websocket: Any) -> None:  # never called: the route's app is
        raise AssertionError

    routes = [
        Route("/webhook", lambda request: None, methods=["POST"]),
        WebSocketRoute("/media", media),
        WebSocketRoute("/media/{token}", media),
    ]
    fast = MediaFastPath.for_routes(app, "/telephony/acme", routes)
    assert list(fast.routes) == ["/telephony/acme/media"]  # static WebSocket routes only

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        reached.append("media " + scope["path"])

    fast.routes["/telephony/acme/media"] = endpoint
    for scope in [
        {"type": "websocket", "path": "/telephony/acme/media"},
        {"type": "websocket", "path": "/voice/telephony/acme/media", "root_path": "/voice"},
        {"type": "websocket", "path": "/telephony/acme/media/abc"},
        {"type": "http", "path": "/telephony/acme/media"},
    ]:
        await fast(scope, None, None)
    assert reached == [
        "media /telephony/acme/media",
        "media /voice/telephony/acme/media",
        "app /telephony/acme/media/abc",
        "app /telephony/acme/media",
    ]
