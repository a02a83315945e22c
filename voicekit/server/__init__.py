"""The voicekit server: ASGI app, call manager, media tokens."""

from voicekit.server.app import create_app
from voicekit.server.calls import CallManager
from voicekit.server.tokens import MediaTokens

__all__ = ["CallManager", "MediaTokens", "create_app"]
