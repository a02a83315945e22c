"""create_app mounted under a prefix in FastAPI, as docs/server.md shows: the media URL
keeps the prefix, and the parent app runs voicekit's lifespan (drain, provider close)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from voicekit_telnyx import TelnyxTelephony
from voicekit_telnyx.settings import TelnyxSettings

import voicekit
from voicekit.audio import ULAW_8K
from voicekit.testing import FakeLLM, FakeSTT, FakeTTS, voice
from voicekit.testing.emulators import LoopbackServer, TelnyxEmulator
from voicekit.testing.phone import PhoneSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.waits]


class ClosingTTS(FakeTTS):
    closed = False

    async def aclose(self) -> None:
        self.closed = True


async def test_a_call_through_create_app_mounted_in_fastapi(tmp_path: Path) -> None:
    from fastapi import FastAPI  # here: every test worker collects this module, few run it

    server = LoopbackServer(lifespan=True, graceful=True)
    prefix = f"{server.http_url}/voice"
    tts = ClosingTTS()
    async with TelnyxEmulator() as telnyx, PhoneSimulator(prefix, telnyx) as phone:
        settings = voicekit.load_settings(
            server={"public_url": prefix, "records_dir": str(tmp_path)},
            agent={"first_speaker": "caller", "instructions": "You are an assistant."},
        )
        telephony = TelnyxTelephony(
            TelnyxSettings(
                api_key="test-telnyx-key", public_key=phone.public_key, base_url=telnyx.url
            )
        )
        voice_app = voicekit.create_app(
            settings,
            stt=FakeSTT.scripted(["what are your hours"]),
            llm=FakeLLM.scripted(["We are open nine to five."]),
            tts=tts,
            telephony=telephony,
        )
        app = FastAPI(lifespan=voice_app.lifespan)
        app.mount("/voice", voice_app)

        @app.get("/")
        async def home() -> dict[str, str]:  # the application's own routes still work
            return {"app": "mine"}

        server.app = app
        async with server:
            async with phone.call() as call:
                await call.say(voice(800, ULAW_8K))
                with anyio.fail_after(10):
                    while not voice_app.state.calls.active[call.call_id].record.turns:  # noqa: ASYNC110
                        await anyio.sleep(0.05)
            answer = await telnyx.wait_for("answer", call.call_id)
            assert answer.body["stream_url"].endswith("/voice/telephony/telnyx/media")
            with anyio.fail_after(10):
                while not voice_app.state.calls.records:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
        calls = voice_app.state.calls
    assert calls.records[-1].turns[0].heard_text == "We are open nine to five."
    assert calls.draining and tts.closed  # the lifespan ran at shutdown
    assert (tmp_path / f"{call.call_id}.json").exists()
    assert server.app_errors == []
