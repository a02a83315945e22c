"""voicekit plugin `elevenlabs`: ElevenLabs text-to-speech.

- ``elevenlabs``: the ``multi-stream-input`` WebSocket, one connection per call and one
  context per utterance, with alignment for exact barge-in;
- ``elevenlabs-rest``: the REST streaming endpoint, for networks without WebSockets.

Both speak the protocol directly over the core's websockets and httpx: no SDK needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import voicekit
from voicekit.tts import TTS
from voicekit_elevenlabs.rest import ElevenLabsRestTTS
from voicekit_elevenlabs.tts import ElevenLabsTTS

__all__ = ["ElevenLabsRestTTS", "ElevenLabsTTS"]


@voicekit.hookimpl
def register_tts(register: Callable[[type[TTS[Any]]], None]) -> None:
    register(ElevenLabsTTS)
    register(ElevenLabsRestTTS)
