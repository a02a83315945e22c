"""A whole call through the real Soniox and ElevenLabs plugins, over sockets to their
emulators, with the fake LLM and the in-memory media stream (real clock, asyncio)."""

from __future__ import annotations

import anyio
import pytest
from voicekit_elevenlabs import ElevenLabsTTS
from voicekit_elevenlabs.settings import ElevenLabsSettings
from voicekit_soniox import SonioxSTT
from voicekit_soniox.settings import SonioxSettings

from voicekit.audio import ULAW_8K
from voicekit.config.sections import AgentSettings, TurnSettings
from voicekit.session import CallSession
from voicekit.testing import FakeLLM, FakeMediaStream, silence, voice
from voicekit.testing.emulators import ElevenLabsEmulator, SonioxEmulator

pytestmark = [pytest.mark.anyio, pytest.mark.waits]


async def test_pcmu_call_through_soniox_and_elevenlabs_with_zero_transcoding() -> None:
    async with (
        SonioxEmulator(utterances=["what time do you open", "thanks"], endpoint_ms=500) as sx,
        ElevenLabsEmulator(first_audio_ms=40, ms_per_char=20) as el,
    ):
        stt = SonioxSTT(
            SonioxSettings.model_validate({"api_key": "test-soniox-key", "url": sx.url})
        )
        tts = ElevenLabsTTS(
            ElevenLabsSettings.model_validate({"api_key": "test-elevenlabs-key", "url": el.url})
        )
        llm = FakeLLM.scripted(
            ["We open at nine, and close at five.", "You are welcome."],
            first_token_ms=50,
            tokens_per_second=200,
        )
        media = FakeMediaStream(inbound_format=ULAW_8K)
        session = CallSession(
            media,
            stt=stt,
            llm=llm,
            tts=tts,
            agent=AgentSettings(first_speaker="caller"),
            turn=TurnSettings(idle_timeout_s=60),
        )
        fed = bytearray()

        async def caller() -> None:
            for ms in (900, 500):
                audio = voice(ms, ULAW_8K) + silence(700, ULAW_8K)
                fed.extend(audio)
                await media.say(audio)
                with anyio.fail_after(10):
                    while len(session.record.turns) < (1 if ms == 900 else 2):
                        quiet = silence(20, ULAW_8K)
                        fed.extend(quiet)
                        await media.say(quiet)
            media.hang_up()

        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
            record = await session.run()

    assert [t.user_text for t in record.turns] == ["what time do you open", "thanks"]
    assert [t.heard_text for t in record.turns] == [
        "We open at nine, and close at five.",
        "You are welcome.",
    ]
    # Zero transcoding, end to end: the call's mu-law goes to Soniox as mulaw, and
    # ElevenLabs' ulaw_8000 goes to the call byte for byte.
    assert session.transcoding == {"inbound": False, "outbound": False}
    assert sx.configs[0]["audio_format"] == "mulaw" and sx.configs[0]["sample_rate"] == 8000
    assert el.handshakes[0]["output_format"] == "ulaw_8000"
    assert sx.streams[0].audio_bytes == len(fed)
    sent = b"".join(frame for _, frame in media.sent_frames)
    padded = [bytes(a) + b"\xff" * (-len(a) % 160) for a in el.audio_sent.values()]
    assert sent == b"".join(padded)  # byte for byte; only the last frame of each is padded
    assert len(el.connections) == 1  # one persistent TTS connection for the whole call
    first_turn = record.turns[0]
    # The timeline is complete and in causal order (durations depend on the machine).
    steps = [
        first_turn.user_speech_end,
        first_turn.stt_end_of_turn,
        first_turn.llm_request,
        first_turn.llm_first_token,
        first_turn.first_segment,
        first_turn.tts_first_audio,
        first_turn.first_frame_sent,
        first_turn.first_mark_reached,
    ]
    assert all(t is not None for t in steps) and steps == sorted(steps)  # type: ignore[type-var]
    assert first_turn.ttfa_ms is not None and first_turn.ttfa_ms > 0
    assert all(len(frame) in (160, 320, 480) for _, frame in media.sent_frames)
