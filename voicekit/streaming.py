"""Helpers for streaming provider plugins, in one public place (docs/plugins.md, "Helpers
for streaming providers"). Everything here is part of voicekit's API: the names in
``__all__`` are pinned by a test, so a plugin can rely on them.
"""

from voicekit.background import BackgroundTasks
from voicekit.persistent import PersistentWebSocket
from voicekit.provider_errors import network_error, retry_after_s, status_error
from voicekit.reconnect import ReconnectBudget
from voicekit.retry import RetryPolicy
from voicekit.sse import EventTooLarge, sse_events
from voicekit.tasks import spawn
from voicekit.tls import HTTP1_ALPN, HTTP2_ALPN, client_tls
from voicekit.tool_calls import ToolCallAssembler, ToolCallLimit, parse_tool_arguments
from voicekit.websocket import close_websocket, connect_websocket, send_message

__all__ = [
    "HTTP1_ALPN",
    "HTTP2_ALPN",
    "BackgroundTasks",
    "EventTooLarge",
    "PersistentWebSocket",
    "ReconnectBudget",
    "RetryPolicy",
    "ToolCallAssembler",
    "ToolCallLimit",
    "client_tls",
    "close_websocket",
    "connect_websocket",
    "network_error",
    "parse_tool_arguments",
    "retry_after_s",
    "send_message",
    "spawn",
    "sse_events",
    "status_error",
]
