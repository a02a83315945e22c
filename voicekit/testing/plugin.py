"""The ``fake`` plugin: voicekit.testing's fakes as ordinary providers.

Selectable from config (``[llm] provider = "fake"``), so a real server process can run
with scripted providers: for demos, load tests and the benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from voicekit.hookspecs import hookimpl
from voicekit.llm import LLM
from voicekit.stt import STT
from voicekit.testing.fake_llm import FakeLLM
from voicekit.testing.fake_stt import FakeSTT
from voicekit.testing.fake_tts import FakeTTS
from voicekit.tts import TTS


@hookimpl
def register_stt(register: Callable[[type[STT[Any]]], None]) -> None:
    register(FakeSTT)


@hookimpl
def register_llm(register: Callable[[type[LLM[Any]]], None]) -> None:
    register(FakeLLM)


@hookimpl
def register_tts(register: Callable[[type[TTS[Any]]], None]) -> None:
    register(FakeTTS)
