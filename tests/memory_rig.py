"""The voicekit server app driven in memory on trio's virtual clock, and a phone to call it.

The same app ``voicekit serve`` runs (webhook and media routes, media tokens, the Telnyx
media stream, ``CallManager``, the call), with fake STT, LLM and TTS, reached through
``voicekit.testing.asgi`` instead of sockets: a test of behaviour waits for nothing real.
The loopback rig (``server_helpers``) keeps the smoke tests over real sockets.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import trio.testing
from nacl.signing import SigningKey
from voicekit_telnyx import TelnyxTelephony
from voicekit_telnyx.settings import TelnyxSettings

from voicekit.audio import AudioFormat
from voicekit.config import load_settings
from voicekit.server import CallManager, create_app
from voicekit.testing import FakeLLM, FakeSTT, FakeSTTStream, FakeTTS
from voicekit.testing.asgi import asgi_lifespan
from voicekit.testing.emulators import TelnyxEmulator
from voicekit.testing.phone import PhoneSimulator, SimulatedCall

PUBLIC_URL = "https://voice.example.com"
TEST_INSTRUCTIONS = "You are a helpful phone assistant under test."
CHAR_MS = 60.0  # FakeTTS: each character is 60 ms of audio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Trio with a virtual clock that jumps whenever every task waits."""
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


class ByCallSTT(FakeSTT):
    """A FakeSTT whose calls say their own lines when ``by_call`` (call id: lines) names
    them; the others share the scripted ``utterances``."""

    by_call: dict[str, list[str]]

    def stream(self, fmt: AudioFormat, *, call_id: str | None = None) -> FakeSTTStream:
        lines = self.by_call.get(call_id or "")
        if lines is None:
            return super().stream(fmt, call_id=call_id)
        return FakeSTT.scripted(lines).stream(fmt, call_id=call_id)


@dataclass
class MemoryRig:
    app: Any
    calls: CallManager
    phone: PhoneSimulator
    telnyx: TelnyxEmulator
    stt: ByCallSTT
    llm: FakeLLM
    tts: FakeTTS
    telephony: TelnyxTelephony

    def turns_played(self, call: SimulatedCall) -> int:
        """Turns the call's session has recorded (a reply counts once fully played); -1
        once the call is over."""
        session = self.calls.active.get(call.call_id)
        return len(session.record.turns) if session is not None else -1


@asynccontextmanager
async def memory_rig(
    tmp_path: Path,
    *,
    utterances: list[str] | None = None,
    replies: list[str] | None = None,
    echo: bool = False,
    agent: dict[str, Any] | None = None,
    turn: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
    telnyx_options: dict[str, Any] | None = None,
) -> AsyncIterator[MemoryRig]:
    seed = secrets.token_bytes(32)
    telnyx = TelnyxEmulator()
    settings = load_settings(
        agent={"first_speaker": "caller", "instructions": TEST_INSTRUCTIONS, **(agent or {})},
        turn={"idle_timeout_s": 60, **(turn or {})},
        server={  # no records_dir: files are written in a worker thread, and while the
            # event loop waits for a thread the virtual clock jumps to its next timer
            "shutdown_grace_s": 0.2,
            "public_url": PUBLIC_URL,
            **(server or {}),
        },
    )
    telephony = TelnyxTelephony(
        TelnyxSettings.model_validate(
            {
                "api_key": telnyx.api_key,
                "public_key": base64.b64encode(bytes(SigningKey(seed).verify_key)).decode(),
                "base_url": f"{PUBLIC_URL}/v2",
                "connection_id": "conn-1",
                "from_number": "+15550009999",
                **(telnyx_options or {}),
            }
        ),
        http_transport=httpx.ASGITransport(app=telnyx.server.app),
    )
    stt = ByCallSTT.scripted(utterances or [])
    stt.by_call = {}
    llm = FakeLLM.scripted(replies or [], first_token_ms=50, tokens_per_second=200, echo=echo)
    tts = FakeTTS()
    app = create_app(settings, stt=stt, llm=llm, tts=tts, telephony=telephony)
    async with (
        asgi_lifespan(app),
        PhoneSimulator(PUBLIC_URL, telnyx, seed=seed, app=app) as phone,
    ):
        yield MemoryRig(app, app.state.calls, phone, telnyx, stt, llm, tts, telephony)
        with anyio.fail_after(30):  # every call's server side ends once its caller is gone
            while app.state.calls.active:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        # Every route must end cleanly, whatever the callers did: a server would only log it.
        assert phone.app_errors == [], phone.app_errors


async def until(predicate: Any, limit_s: float = 60.0) -> None:
    """Wait, on the virtual clock, until ``predicate()``; fail after ``limit_s``."""
    with anyio.fail_after(limit_s):
        while not predicate():  # noqa: ASYNC110  (polling state that has no event)
            await anyio.sleep(0.01)
