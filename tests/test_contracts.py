"""Every first-party provider passes voicekit.testing.contracts, as a third party's would."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from voicekit_elevenlabs import ElevenLabsRestTTS, ElevenLabsTTS
from voicekit_elevenlabs.settings import ElevenLabsSettings
from voicekit_soniox import SonioxSTT
from voicekit_soniox.settings import SonioxSettings

from voicekit.audio import ULAW_8K
from voicekit.llm import LLM
from voicekit.stt import STT
from voicekit.testing import FakeLLM, FakeSTT, FakeTTS, silence, voice
from voicekit.testing.contracts import LLMContract, ReconnectCase, STTContract, TTSContract
from voicekit.testing.emulators import ElevenLabsEmulator, Faults, SonioxEmulator
from voicekit.tts import TTS

SPEECH = voice(900, ULAW_8K) + silence(1200, ULAW_8K)


class TestFakeTTS(TTSContract):
    min_ms_per_word = 25  # the fakes speak 5 ms a character, far faster than a voice

    @pytest.fixture
    def tts(self) -> TTS:
        return FakeTTS.with_options(ms_per_char=5, first_audio_ms=10)


class TestElevenLabs(TTSContract):
    min_ms_per_word = 25  # the fakes speak 5 ms a character, far faster than a voice

    @pytest.fixture
    async def tts(self) -> AsyncIterator[TTS]:
        async with ElevenLabsEmulator(ms_per_char=5, first_audio_ms=10) as el:
            settings = {"api_key": "test-elevenlabs-key", "url": el.url, "timeout": 5}
            yield ElevenLabsTTS(ElevenLabsSettings.model_validate(settings))

    @pytest.fixture
    async def reconnecting_tts(self) -> AsyncIterator[ReconnectCase[TTS]]:
        faults = Faults(drop_after=3, drops=1)  # three audio messages into the utterance
        async with ElevenLabsEmulator(
            ms_per_char=5, first_audio_ms=10, chars_per_chunk=10, faults=faults
        ) as el:
            settings = {"api_key": "test-elevenlabs-key", "url": el.url, "timeout": 5}
            tts = ElevenLabsTTS(ElevenLabsSettings.model_validate(settings))
            yield ReconnectCase(tts, lambda: faults.dropped)


class TestElevenLabsRest(TTSContract):
    min_ms_per_word = 25  # the fakes speak 5 ms a character, far faster than a voice

    @pytest.fixture
    async def tts(self) -> AsyncIterator[TTS]:
        async with ElevenLabsEmulator(ms_per_char=5, first_audio_ms=10) as el:
            settings = {"api_key": "test-elevenlabs-key", "rest_url": el.url, "timeout": 5}
            async with ElevenLabsRestTTS(ElevenLabsSettings.model_validate(settings)) as tts:
                yield tts


class TestFakeSTT(STTContract):
    @pytest.fixture
    def stt(self) -> STT:
        return FakeSTT.scripted(["hello there"])

    @pytest.fixture
    def speech(self) -> bytes:
        return SPEECH


class TestSoniox(STTContract):
    @pytest.fixture
    async def stt(self) -> AsyncIterator[STT]:
        async with SonioxEmulator(utterances=["hello there"] * 4, endpoint_ms=500) as sx:
            settings = {"api_key": "test-soniox-key", "url": sx.url, "timeout": 5}
            yield SonioxSTT(SonioxSettings.model_validate(settings))

    @pytest.fixture
    async def reconnecting_stt(self) -> AsyncIterator[ReconnectCase[STT]]:
        faults = Faults(drop_after=2, drops=1)  # after the first partial words
        async with SonioxEmulator(
            utterances=["hello there"] * 4, endpoint_ms=500, faults=faults
        ) as sx:
            settings = {"api_key": "test-soniox-key", "url": sx.url, "timeout": 5}
            yield ReconnectCase(
                SonioxSTT(SonioxSettings.model_validate(settings)), lambda: faults.dropped
            )

    @pytest.fixture
    def speech(self) -> bytes:
        return SPEECH


class TestFakeLLM(LLMContract):
    @pytest.fixture
    def llm(self) -> LLM:
        return FakeLLM.scripted(["Yes, I am here. How can I help?"] * 4, first_token_ms=10)
