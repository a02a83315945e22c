"""Media WebSocket connections straight to their endpoint, past the middleware.

Every message a call's media socket sends (50 a second per call) would otherwise go
through Starlette's exception middleware and router wrappers on its way to the server:
about 5 % of a busy server's CPU at 300 calls. Those layers do nothing for a media
socket (its endpoint handles its own errors and closes), so a WebSocket connection whose
path is a telephony provider's static media route is handed to that route's endpoint
directly, with the server's own ``receive`` and ``send``. Everything else, and any route
with path parameters, goes through the app as usual.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["MediaFastPath"]


class MediaFastPath:
    """ASGI: ``routes`` (``{"/telephony/telnyx/media": asgi_app}``) answered directly."""

    def __init__(self, app: Any, routes: dict[str, Any]) -> None:
        self.app = app
        self.routes = routes

    @classmethod
    def for_routes(cls, app: Any, prefix: str, routes: Iterable[Any]) -> MediaFastPath:
        """The WebSocket routes among a provider's ``routes``, mounted at ``prefix``."""
        from starlette.routing import WebSocketRoute

        direct = {
            prefix + route.path: route.app
            for route in routes
            if isinstance(route, WebSocketRoute) and "{" not in route.path
        }
        return cls(app, direct)

    def __getattr__(self, name: str) -> Any:  # app.state and friends, as on the wrapped app
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            path = scope["path"]
            root = scope.get("root_path", "")
            endpoint = self.routes.get(path[len(root) :] if path.startswith(root) else path)
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)
