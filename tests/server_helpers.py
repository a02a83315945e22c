"""A voicekit server on loopback with every provider emulated, and a phone to call it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicekit_elevenlabs import ElevenLabsTTS
from voicekit_elevenlabs.settings import ElevenLabsSettings
from voicekit_soniox import SonioxSTT
from voicekit_soniox.settings import SonioxSettings
from voicekit_telnyx import TelnyxTelephony
from voicekit_telnyx.settings import TelnyxSettings

from voicekit.config import load_settings
from voicekit.server import CallManager, create_app
from voicekit.testing import FakeLLM
from voicekit.testing.emulators import (
    ElevenLabsEmulator,
    LoopbackServer,
    SonioxEmulator,
    TelnyxEmulator,
)
from voicekit.testing.phone import PhoneSimulator

# Set so the calls converse freely with the fake LLM instead of running the built-in flow.
TEST_INSTRUCTIONS = "You are a helpful phone assistant under test."
# The emulated Soniox endpoint: long enough to tell cause from effect, short enough that
# each turn of a real-time test costs little.
ENDPOINT_MS = 250


@dataclass
class Rig:
    server: LoopbackServer
    calls: CallManager
    phone: PhoneSimulator
    telnyx: TelnyxEmulator
    soniox: SonioxEmulator
    elevenlabs: ElevenLabsEmulator
    llm: FakeLLM
    telephony: TelnyxTelephony


@asynccontextmanager
async def rig(
    tmp_path: Path,
    *,
    utterances: list[str] | None = None,
    by_call: dict[str, list[str]] | None = None,
    replies: list[str] | None = None,
    echo: bool = False,
    agent: dict[str, Any] | None = None,
    turn: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
    telnyx_options: dict[str, Any] | None = None,
) -> AsyncIterator[Rig]:
    async with (
        TelnyxEmulator() as telnyx,
        SonioxEmulator(utterances=utterances, by_call=by_call, endpoint_ms=ENDPOINT_MS) as soniox,
        ElevenLabsEmulator(first_audio_ms=30, ms_per_char=20) as elevenlabs,
        PhoneSimulator("http://placeholder", telnyx) as phone,
    ):
        loopback = LoopbackServer(lifespan=True)
        settings = load_settings(
            agent={"first_speaker": "caller", "instructions": TEST_INSTRUCTIONS, **(agent or {})},
            turn={"idle_timeout_s": 60, **(turn or {})},
            server={
                "records_dir": str(tmp_path / "records"),
                "shutdown_grace_s": 0.2,
                "public_url": loopback.http_url,
                **(server or {}),
            },
        )
        loopback.limits = settings.server
        telephony = TelnyxTelephony(
            TelnyxSettings.model_validate(
                {
                    "api_key": "test-telnyx-key",
                    "public_key": phone.public_key,
                    "base_url": telnyx.url,
                    "connection_id": "conn-1",
                    "from_number": "+15550009999",
                    **(telnyx_options or {}),
                }
            )
        )
        llm = FakeLLM.scripted(replies or [], first_token_ms=50, tokens_per_second=200, echo=echo)
        app = create_app(
            settings,
            llm=llm,
            telephony=telephony,
            stt=SonioxSTT(
                SonioxSettings.model_validate({"api_key": "test-soniox-key", "url": soniox.url})
            ),
            tts=ElevenLabsTTS(
                ElevenLabsSettings.model_validate(
                    {"api_key": "test-elevenlabs-key", "url": elevenlabs.url}
                )
            ),
        )
        loopback.app = app
        async with loopback:
            phone.server_url = loopback.http_url
            yield Rig(loopback, app.state.calls, phone, telnyx, soniox, elevenlabs, llm, telephony)
        # Every route must end cleanly, whatever the callers did: uvicorn would only log it.
        for server in (loopback, soniox.server, elevenlabs.server, telnyx.server):
            assert server.app_errors == [], server.app_errors
