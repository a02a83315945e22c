"""The voicekit server: ASGI app, call manager, media tokens."""

from typing import Any

from voicekit.config.settings import VoiceKitSettings
from voicekit.server.app import create_app
from voicekit.server.calls import CallManager
from voicekit.server.tokens import MediaTokens

__all__ = ["CallManager", "MediaTokens", "create_app", "uvicorn_config"]


def uvicorn_config(app: Any, settings: VoiceKitSettings, **options: Any) -> Any:
    """The ``uvicorn.Config`` that ``voicekit serve`` runs ``app`` with: its request
    deadlines, header, body and message limits, and hardened WebSocket protocol, on
    ``[server] host`` and ``port`` (``options`` are passed on to uvicorn)."""
    from voicekit.server._uvicorn import server_config

    server = settings.server
    options.setdefault("host", server.host)
    options.setdefault("port", server.port)
    return server_config(app, server, **options)
