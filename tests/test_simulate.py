"""``voicekit simulate`` end to end, as a new user runs it: the offline providers, the
built-in flow, the phone simulator over the real protocols, a stereo recording."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from voicekit.audio import read_wav
from voicekit.cli import cli
from voicekit.cli import commands as _commands  # noqa: F401  (registers subcommands)
from voicekit.flows.builtin import BUILTIN_FLOW
from voicekit.flows.load import load_flow


@pytest.fixture(autouse=True)
def _no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VOICEKIT_CONFIG", raising=False)
    for var in ("TELNYX_API_KEY", "TELNYX_PUBLIC_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def voiced_seconds(channel: np.ndarray, rate: int) -> float:
    """Seconds of 20 ms windows louder than a quiet room."""
    window = rate // 50
    frames = channel[: len(channel) // window * window].reshape(-1, window).astype(float)
    rms = np.sqrt((frames**2).mean(axis=1))
    return float((rms > 500).sum() * 0.02)


@pytest.mark.slow
def test_simulate_runs_a_whole_call_offline_with_a_transcript_waterfall_and_recording(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--say",
            "What are your opening hours?",
            "--say",
            "No thanks, goodbye.",
            "--record",
            "call.wav",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    flow = load_flow(BUILTIN_FLOW, transfer_allowlist=["+15555550100"])
    heard_by_stt = [e["text"] for e in record["transcript"] if e["role"] == "user"]
    assert "opening hours" in heard_by_stt[0] and "thanks" in heard_by_stt[1]
    agent = [e["text"] for e in record["transcript"] if e["role"] == "agent"]
    assert agent[1] == flow.node("hours").script  # the flow's answer, as written
    assert record["end_reason"] == "agent_hangup"  # the goodbye node hung up
    caller_turns = [t for t in record["turns"] if t["user_text"]]
    assert len(caller_turns) == 2 and all(t["ttfa_ms"] for t in caller_turns)
    assert [t["flow"]["node"] for t in caller_turns] == ["hours", "goodbye"]
    # The live transcript and the waterfall went to stderr, the JSON alone to stdout.
    assert "caller (STT heard): what are your opening hours" in result.stderr
    assert (
        "first frame sent (TTFA)" in result.stderr and "call ended: agent_hangup" in result.stderr
    )
    fmt, audio = read_wav(tmp_path / "call.wav")
    assert fmt.channels == 2
    samples = np.frombuffer(audio, dtype="<i2")
    caller, agent_side = samples[0::2], samples[1::2]
    assert voiced_seconds(caller, fmt.sample_rate) > 1.5  # two spoken lines
    assert voiced_seconds(agent_side, fmt.sample_rate) > 10  # greeting, hours, goodbye


@pytest.mark.slow
def test_simulate_emulate_runs_a_cloud_config_with_no_key(tmp_path: Path) -> None:
    (tmp_path / "voicekit.toml").write_text(
        '[agent]\ninstructions = "You are a test agent."\ngreeting = "Hi there."\n'
        '[stt]\nprovider = "soniox"\n[llm]\nprovider = "openai"\n[tts]\nprovider = "elevenlabs"\n'
    )
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--config",
            "voicekit.toml",
            "--emulate",
            "--say",
            "Is anyone there?",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "stt=soniox llm=openai tts=elevenlabs" in result.stderr
    record = json.loads(result.stdout)
    said = [(e["role"], e["text"]) for e in record["transcript"]]
    assert said[0] == ("agent", "Hi there.")
    assert ("user", "Is anyone there?") in said  # the Soniox emulator's scripted line
    assert any(role == "agent" and "emulated model" in text for role, text in said)
    assert record["end_reason"] == "caller_hangup"


def test_simulate_refuses_a_line_with_nothing_to_say() -> None:
    result = CliRunner().invoke(cli, ["simulate", "--say", "?!"])
    assert result.exit_code == 2 and "--say line 1 ('?!') has no word to say" in result.output
