"""``voicekit serve`` as a real process: configured by file, drained by SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import Process

from voicekit.audio import ULAW_8K
from voicekit.testing import voice
from voicekit.testing.emulators import (
    ElevenLabsEmulator,
    OpenAIEmulator,
    ScriptedReply,
    ScriptedToolCall,
    SonioxEmulator,
    TelnyxEmulator,
)
from voicekit.testing.phone import PhoneSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.waits]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_toml(
    port: int,
    phone: PhoneSimulator,
    telnyx: TelnyxEmulator,
    sx: SonioxEmulator,
    el: ElevenLabsEmulator,
    *,
    agent: str,
    server: str = "",
    telnyx_extra: str = "",
    fake: str = "",
    llm: str = "fake",
    providers: str = "",
) -> str:
    """A voicekit.toml wiring a server on ``port`` to the emulators and the phone."""
    return f"""
[agent]
instructions = "You are a helpful phone assistant under test."
{agent}
[stt]
provider = "soniox"
[llm]
provider = "{llm}"
[tts]
provider = "elevenlabs"
[telephony]
provider = "telnyx"
[server]
host = "127.0.0.1"
port = {port}
public_url = "http://127.0.0.1:{port}"
shutdown_grace_s = 1
{server}
[providers.soniox]
url = "{sx.url}"
api_key = "test-soniox-key"
[providers.elevenlabs]
url = "{el.url}"
api_key = "test-elevenlabs-key"
[providers.telnyx]
api_key = "test-telnyx-key"
public_key = "{phone.public_key}"
base_url = "{telnyx.url}"
{telnyx_extra}
[providers.fake]
{fake}
{providers}
"""


@dataclass
class Running:
    process: Process
    phone: PhoneSimulator
    telnyx: TelnyxEmulator
    port: int
    stderr: bytearray
    stdout: bytearray


@asynccontextmanager
async def voicekit_process(
    tmp_path: Path, command: list[str], *, utterances: list[str], **toml: str
) -> AsyncIterator[Running]:
    """``voicekit <command> --config`` as a real process, wired to fresh emulators and a
    phone; killed (if still running) on the way out."""
    port = free_port()
    async with (
        TelnyxEmulator() as telnyx,
        SonioxEmulator(utterances=utterances, endpoint_ms=250) as sx,
        ElevenLabsEmulator(ms_per_char=20) as el,
        PhoneSimulator(f"http://127.0.0.1:{port}", telnyx) as phone,
    ):
        config = tmp_path / "voicekit.toml"
        config.write_text(server_toml(port, phone, telnyx, sx, el, **toml))
        process = await anyio.open_process(
            [sys.executable, "-m", "voicekit", *command, "--config", str(config)]
        )
        stderr, stdout = bytearray(), bytearray()

        async def collect(pipe: Any, into: bytearray) -> None:  # drained: -vv writes a lot
            async for chunk in pipe:
                into.extend(chunk)

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(collect, process.stderr, stderr)
                tg.start_soon(collect, process.stdout, stdout)
                yield Running(process, phone, telnyx, port, stderr, stdout)
                if process.returncode is None:
                    process.kill()
        finally:
            if process.returncode is None:
                process.kill()


async def wait_healthy(port: int) -> None:
    async with httpx.AsyncClient() as client:
        with anyio.fail_after(20):
            while True:
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).is_success:
                        return
                except httpx.HTTPError:
                    await anyio.sleep(0.1)


@pytest.mark.parametrize(
    "verbosity", [[], ["-vv"], ["-vvv"]], ids=["default", "debug", "library-debug"]
)
async def test_no_secret_reaches_the_log_of_a_whole_call(
    tmp_path: Path, verbosity: list[str]
) -> None:
    """Every line a real server writes during a whole call, at default verbosity and at
    -vv and -vvv (where the WebSocket and HTTP libraries log handshakes and headers), is free of
    the API keys, the media auth secret and the call's media token: even with the token
    in the stream URL, which uvicorn's access log prints."""
    secret = "media-auth-secret-0123456789"
    async with voicekit_process(
        tmp_path,
        [*verbosity, "serve"],
        utterances=["hello"],
        agent='first_speaker = "caller"',
        server=f'media_auth_secret = "{secret}"',
        telnyx_extra="media_token_in_url = true",
        fake='replies = ["Hi there."]\nfirst_token_ms = 50',
    ) as run:
        await wait_healthy(run.port)
        async with httpx.AsyncClient() as client:  # anyone may put a "secret" in a URL
            probe = await client.get(f"http://127.0.0.1:{run.port}/healthz?token=abc&api_key=xyz")
            assert probe.status_code == 200
        async with run.phone.call() as call:
            await call.say(voice(600, ULAW_8K))
            with anyio.fail_after(10):
                while not call.marks_echoed:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            await call.wait(0.5)
        answer = await run.telnyx.wait_for("answer", call.call_id)
        token = answer.body["stream_auth_token"]
        assert f"token={token}" in answer.body["stream_url"].replace("%3D", "=")
        run.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(20):
            await run.process.wait()
        await anyio.sleep(0.1)
        log = run.stderr.decode() + run.stdout.decode()  # uvicorn's access log: stdout
    assert "WebSocket /telephony/telnyx/media?token=[redacted]" in log  # the access log line
    assert "/healthz?token=[redacted]&api_key=[redacted]" in log
    assert "Logging error" not in log and "Traceback" not in log
    if verbosity == ["-vvv"]:
        assert "Authorization: Bearer [redacted]" in log  # websockets' Soniox handshake
        assert "xi-api-key: [redacted]" in log  # and the ElevenLabs one
    for value in (
        token,
        token.split(".")[2],  # the token's MAC alone
        secret,
        "test-soniox-key",
        "test-elevenlabs-key",
        "test-telnyx-key",
    ):
        leaks = [line for line in log.splitlines() if value in line]
        assert not leaks, (value, leaks[:3])


async def test_serve_answers_a_call_and_drains_on_sigterm(tmp_path: Path) -> None:
    records = tmp_path / "records"
    long = "This answer is far too long to finish before the server stops. " * 10
    async with voicekit_process(
        tmp_path,
        ["serve"],
        utterances=["hello"],
        agent='first_speaker = "caller"\nfarewell = "We are closing, goodbye."',
        server=f'records_dir = "{records}"',
        fake=f"replies = [{json.dumps(long)}]\nfirst_token_ms = 50",
    ) as run:
        process, phone, telnyx, port = run.process, run.phone, run.telnyx, run.port
        async with httpx.AsyncClient() as client:
            with anyio.fail_after(20):
                while True:
                    try:
                        if (await client.get(f"http://127.0.0.1:{port}/healthz")).is_success:
                            break
                    except httpx.HTTPError:
                        await anyio.sleep(0.1)
        async with phone.call() as call:
            await call.say(voice(600, ULAW_8K))
            with anyio.fail_after(10):
                while len(call.agent_audio) < 4000:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            hangup = await telnyx.wait_for("hangup", call.call_id, limit_s=20)
            assert hangup is not None
        with anyio.fail_after(20):
            code = await process.wait()
    assert code == 0
    saved = json.loads(next(records.glob("*.json")).read_text())
    assert saved["end_reason"] == "shutdown"
    assert saved["transcript"][-1]["text"] == "We are closing, goodbye."


async def test_dial_calls_out_runs_the_agent_and_exits(tmp_path: Path) -> None:
    async with voicekit_process(
        tmp_path,
        ["dial", "+15557654321"],
        utterances=["yes thanks"],
        agent='first_speaker = "agent"\ngreeting = "Hello, this is Acme."',
        telnyx_extra='connection_id = "conn-1"\nfrom_number = "+15550009999"',
        fake='replies = ["Great, goodbye."]\nfirst_token_ms = 50',
    ) as run:
        process, phone, telnyx = run.process, run.phone, run.telnyx
        async with await phone.answer(limit_s=20) as callee:
            with anyio.fail_after(10):
                while not callee.marks_echoed:  # noqa: ASYNC110  (the greeting played)
                    await anyio.sleep(0.05)
            await callee.wait(2.0)
            await callee.say(voice(500, ULAW_8K))
            await callee.wait(2.0)
        with anyio.fail_after(20):
            code = await process.wait()
        await anyio.sleep(0.1)
        output = run.stdout.decode()
    assert code == 0
    assert "dialling +15557654321" in output
    dial = telnyx.commands[0]
    assert dial.action == "dial" and dial.body["to"] == "+15557654321"


async def test_serve_with_the_openai_provider_end_to_end(tmp_path: Path) -> None:
    """Every wire protocol real: Telnyx webhooks and media (phone simulator), Soniox and
    ElevenLabs WebSockets, OpenAI Chat Completions over HTTP. The model's first request
    fails (503) and is retried before any word was spoken; its reply calls the built-in
    transfer_call tool, and the server transfers the call once the words have played."""
    records = tmp_path / "records"
    put_through = ScriptedReply(
        "Putting you through to sales now.",
        tool_calls=[ScriptedToolCall("transfer_call", '{"destination": "+1 555 123 0000"}')],
    )
    async with OpenAIEmulator(replies=[put_through, ""], fail_next=[503]) as em:
        async with voicekit_process(
            tmp_path,
            ["serve"],
            utterances=["sales please"],
            agent='first_speaker = "caller"\nbuiltin_tools = ["transfer_call"]\n'
            'transfer_allowlist = ["+15551230000"]',
            server=f'records_dir = "{records}"',
            llm="openai",
            providers=f'[providers.openai]\napi_key = "{em.api_key}"\nbase_url = "{em.url}"\n'
            'model = "gpt-test"',
        ) as run:
            await wait_healthy(run.port)
            async with run.phone.call() as call:
                await call.say(voice(600, ULAW_8K))
                transfer = await run.telnyx.wait_for("transfer", call.call_id, limit_s=20)
                heard = len(call.agent_audio)
            run.process.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                assert await run.process.wait() == 0
    assert transfer.body["to"] == "+15551230000"  # the allow-list's entry, as configured
    assert "hangup" not in run.telnyx.actions(call.call_id)  # transferred, not hung up
    # Every word was heard before the transfer: the emulator speaks 20 ms per character,
    # 8 bytes per ms of mu-law.
    assert heard >= 8 * 20 * len("Putting you through to sales now.")
    first, retried, after_tool = em.requests
    assert first["body"] == retried["body"] and first["body"]["model"] == "gpt-test"
    assert [t["function"]["name"] for t in first["body"]["tools"]] == ["transfer_call"]
    offered = first["body"]["tools"][0]["function"]["parameters"]["properties"]
    assert offered["destination"]["enum"] == ["+15551230000"]  # the model sees its choices
    assert after_tool["body"]["messages"][-1]["role"] == "tool"
    saved = json.loads(next(records.glob("*.json")).read_text())
    assert saved["end_reason"] == "transferred"
    turn = saved["turns"][0]
    assert turn["heard_text"] == "Putting you through to sales now."
    assert turn["input_tokens"] > 0 and turn["tools"][0]["name"] == "transfer_call"
