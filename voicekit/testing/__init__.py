"""Test support that ships with voicekit: fakes of every interface.

The fakes take latency parameters and keep records of what they were given, so a test
(or a benchmark) can drive a whole call in memory, on a real or a virtual clock.
"""

from voicekit.testing.caller_audio import silence, voice
from voicekit.testing.fake_llm import FakeLLM, FakeLLMSettings, tokenize
from voicekit.testing.fake_media import FakeMediaStream, PlayedSegment
from voicekit.testing.fake_stt import FakeSTT, FakeSTTSettings, FakeSTTStream
from voicekit.testing.fake_tts import (
    FakeTTS,
    FakeTTSSession,
    FakeTTSSettings,
    FakeUtterance,
    synthesize,
)

__all__ = [
    "FakeLLM",
    "FakeLLMSettings",
    "FakeMediaStream",
    "FakeSTT",
    "FakeSTTSettings",
    "FakeSTTStream",
    "FakeTTS",
    "FakeTTSSession",
    "FakeTTSSettings",
    "FakeUtterance",
    "PlayedSegment",
    "silence",
    "synthesize",
    "tokenize",
    "voice",
]
