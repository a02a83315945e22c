"""``voicekit say`` and ``voicekit transcribe`` against the emulators, as a user runs them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from voicekit.audio import PCM_24K, ULAW_8K, AudioFormat, read_wav, write_wav
from voicekit.errors import AudioFormatError
from voicekit.testing import silence, voice
from voicekit.testing.emulators import ElevenLabsEmulator, SonioxEmulator

pytestmark = pytest.mark.anyio


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEKIT_")}
    env.update(extra)
    return env


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    import anyio

    result = await anyio.run_process(
        [sys.executable, "-m", "voicekit", *args], env=env, check=False
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_say_writes_a_wav(tmp_path: Path) -> None:
    out = tmp_path / "reply.wav"
    async with ElevenLabsEmulator(ms_per_char=40) as el:
        env = cli_env(
            VOICEKIT_TTS__PROVIDER="elevenlabs",
            ELEVENLABS_API_KEY="test-elevenlabs-key",
            VOICEKIT_PROVIDERS__ELEVENLABS__URL=el.url,
        )
        code, stdout, stderr = await run_cli(
            "say", "Hello from voicekit.", "--out", str(out), env=env
        )
    assert code == 0, stderr
    fmt, audio = read_wav(out)
    assert fmt == PCM_24K and el.handshakes[0]["output_format"] == "pcm_24000"
    assert fmt.duration_ms(len(audio)) == pytest.approx(len("Hello from voicekit. ") * 40, abs=1)
    assert f"wrote {out}" in stdout


async def test_say_without_a_key_names_the_variable(tmp_path: Path) -> None:
    env = cli_env(VOICEKIT_TTS__PROVIDER="elevenlabs")
    env.pop("ELEVENLABS_API_KEY", None)
    code, _, stderr = await run_cli("say", "Hi", "--out", str(tmp_path / "x.wav"), env=env)
    assert code == 2 and "ELEVENLABS_API_KEY" in stderr and "Traceback" not in stderr


async def transcribe_with_soniox(
    call: Path, utterances: list[str]
) -> tuple[int, str, str, SonioxEmulator]:
    """``voicekit transcribe call`` (ten times real time) against an emulated Soniox that
    hears ``utterances``: exit status, stdout, stderr, and the emulator."""
    async with SonioxEmulator(utterances=utterances) as sx:
        env = cli_env(
            VOICEKIT_STT__PROVIDER="soniox",
            SONIOX_API_KEY="test-soniox-key",
            VOICEKIT_PROVIDERS__SONIOX__URL=sx.url,
        )
        code, stdout, stderr = await run_cli("transcribe", str(call), "--speed", "10", env=env)
    return code, stdout, stderr, sx


async def test_transcribe_prints_one_line_per_turn(tmp_path: Path) -> None:
    call = tmp_path / "call.wav"
    write_wav(call, ULAW_8K, voice(800, ULAW_8K) + silence(900, ULAW_8K) + voice(500, ULAW_8K))
    code, stdout, stderr, sx = await transcribe_with_soniox(
        call, ["I need a plumber", "today please"]
    )
    assert code == 0, stderr
    assert stdout.splitlines() == ["I need a plumber", "today please"]
    assert sx.configs[0]["audio_format"] == "mulaw"  # the file's codec, untouched


def test_wav_round_trip_and_errors(tmp_path: Path) -> None:
    for fmt in (ULAW_8K, PCM_24K, AudioFormat("alaw", 8000, 2)):
        path = tmp_path / f"{fmt.encoding}.wav"
        audio = bytes(range(256)) * 4
        write_wav(path, fmt, audio)
        assert read_wav(path) == (fmt, audio)
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    with pytest.raises(AudioFormatError, match="no audio data"):
        read_wav(tmp_path / "bad.wav")
    (tmp_path / "txt.wav").write_text("hello")
    with pytest.raises(AudioFormatError, match="not a WAV file"):
        read_wav(tmp_path / "txt.wav")


async def test_transcribe_takes_the_left_channel_of_a_stereo_recording(tmp_path: Path) -> None:
    """A ``simulate --record`` file has the caller on the left and the agent on the right:
    only the caller is transcribed."""
    caller = silence(800, ULAW_8K) + voice(800, ULAW_8K) + silence(900, ULAW_8K)
    agent = voice(1500, ULAW_8K, freq=220) + silence(1000, ULAW_8K)
    stereo = b"".join(bytes([c, a]) for c, a in zip(caller, agent, strict=True))
    call = tmp_path / "call.wav"
    write_wav(call, AudioFormat("mulaw", 8000, 2), stereo)
    code, stdout, stderr, sx = await transcribe_with_soniox(call, ["the caller", "the agent"])
    assert code == 0, stderr
    assert stdout.splitlines() == ["the caller"]  # one turn: the agent's voice never went
    assert "transcribing the first (left)" in stderr
    # Mono: one channel's bytes, and the 1.5 s of silence that ends the last turn.
    assert sx.streams[0].audio_bytes == len(caller) + ULAW_8K.bytes_for_ms(1500)
