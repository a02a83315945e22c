"""voicekit plugin `telnyx`: Telnyx telephony.

Call Control v2 over one pooled HTTP client, Ed25519-verified webhooks, and the
bidirectional media-stream WebSocket with marks and clear.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import voicekit
from voicekit.telephony import Telephony
from voicekit_telnyx.telephony import TelnyxTelephony

__all__ = ["TelnyxTelephony"]


@voicekit.hookimpl
def register_telephony(register: Callable[[type[Telephony[Any]]], None]) -> None:
    register(TelnyxTelephony)
