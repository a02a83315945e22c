"""docs/quickstart.md as a user follows it: its configurations and commands, run against
the provider emulators (no key, no network)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from voicekit.cli import cli
from voicekit.cli import commands as _commands  # noqa: F401  (registers subcommands)

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = (ROOT / "docs" / "quickstart.md").read_text()


def block_after(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\n```toml\n(.*?)```", QUICKSTART, re.S)
    assert match, marker
    return match[1]


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VOICEKIT_CONFIG", raising=False)
    for var in ("TELNYX_API_KEY", "TELNYX_PUBLIC_KEY"):
        monkeypatch.delenv(var, raising=False)
    for var in ("ELEVENLABS_API_KEY", "SONIOX_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.setenv(var, "not-a-real-key")
    monkeypatch.chdir(tmp_path)


def test_step_2_the_copied_flow_checks(tmp_path: Path) -> None:
    assert "cp examples/flows/front_desk.toml my_flow.toml" in QUICKSTART
    (tmp_path / "my_flow.toml").write_text((ROOT / "examples/flows/front_desk.toml").read_text())
    (tmp_path / "voicekit.toml").write_text(block_after("quickstart-flow-config"))
    result = CliRunner().invoke(cli, ["flow", "check", "my_flow.toml", "--config", "voicekit.toml"])
    assert result.exit_code == 0, result.output
    check = CliRunner().invoke(cli, ["config", "check", "--config", "voicekit.toml"])
    assert check.exit_code == 0, check.output
    assert "the agent is the built-in front desk flow" not in check.stderr  # it is the copy


@pytest.mark.slow
def test_step_3_the_cloud_config_checks_and_simulates_against_the_emulators(
    tmp_path: Path,
) -> None:
    (tmp_path / "voicekit.toml").write_text(block_after("quickstart-config"))
    check = CliRunner().invoke(cli, ["config", "check", "--config", "voicekit.toml"])
    assert check.exit_code == 0, check.output
    assert "telephony 'telnyx' is not configured" in check.stderr
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--config",
            "voicekit.toml",
            "--emulate",
            "--say",
            "Do you take new patients?",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    said = [(e["role"], e["text"]) for e in record["transcript"]]
    assert said[0] == ("agent", "Thanks for calling Harbor View Dental. How can I help?")
    assert ("user", "Do you take new patients?") in said
    assert record["turns"][-1]["ttfa_ms"] is not None
