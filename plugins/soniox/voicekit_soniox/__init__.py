"""voicekit plugin `soniox`: Soniox real-time speech-to-text over its WebSocket.

Speaks the protocol directly over the core's websockets library: no SDK needed. The
call's codec (mulaw, alaw or PCM) goes to Soniox untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import voicekit
from voicekit.stt import STT
from voicekit_soniox.stt import SonioxSTT

__all__ = ["SonioxSTT"]


@voicekit.hookimpl
def register_stt(register: Callable[[type[STT[Any]]], None]) -> None:
    register(SonioxSTT)
