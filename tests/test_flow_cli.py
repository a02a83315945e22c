"""``voicekit flow check`` and ``voicekit flow chat``, as a user runs them, and
``voicekit config check`` refusing a broken flow."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.flow_helpers import DESK, EXAMPLE
from voicekit.cli import cli
from voicekit.cli import commands as _commands  # noqa: F401  (registers subcommands)


@pytest.fixture(autouse=True)
def _no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VOICEKIT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "voicekit.toml"
    path.write_text(
        f'[agent]\ntransfer_allowlist = ["{DESK}"]\n[llm]\nprovider = "fake"\n'
        "[providers.fake]\nfirst_token_ms = 0\ntokens_per_second = 10000\n" + extra
    )
    return path


def test_flow_check_draws_the_graph_and_checks_transfers_against_the_config(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(
        cli, ["flow", "check", str(EXAMPLE), "--config", str(config(tmp_path))]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "greeting: conversation (script)" in lines
    assert "  -> hours: keywords 'hours', 'open', 'opening', 'close'" in lines
    assert "ask_time: conversation (prompt), extracts date*, time*" in lines
    assert "  -> booking_failed: on_error" in lines
    assert lines[-1] == f"ok: {EXAMPLE}: 9 nodes"
    strict = tmp_path / "strict.toml"
    strict.write_text("[agent]\ntransfer_allowlist = []\n")
    refused = CliRunner().invoke(cli, ["flow", "check", str(EXAMPLE), "--config", str(strict)])
    assert refused.exit_code == 2
    assert "node 'front_desk': to: +15551230000 is not in [agent] transfer_allowlist" in (
        refused.output
    )


def test_flow_check_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'start = "a"\n[[nodes]]\nid = "a"\nscript = "Hi {{who}}"\n'
        '[[nodes]]\nid = "b"\ntype = "ending"\n'
    )
    result = CliRunner().invoke(cli, ["flow", "check", str(bad)])
    assert result.exit_code == 2
    assert "error: " in result.output and "2 problem(s)" in result.output
    assert "node 'a': script: {{who}} is not a variable" in result.output
    assert "node 'b': unreachable from start 'a'" in result.output


def test_flow_chat_walks_the_flow_from_stdin_with_the_configured_llm(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        'replies = ["What is your first name?", "Thanks, Maria.", "Which day suits you?", '
        '"[[save_variables {\\"date\\": \\"2026-12-07\\"}]]"]\n',
    )
    # The booking goes to loopback, which the SSRF guard refuses: no request leaves.
    flow = tmp_path / "desk.toml"
    flow.write_text(EXAMPLE.read_text().replace("https://crm.example.com/", "http://127.0.0.1:9/"))
    lines = "what are your hours\nyes please\nmy name is maria\nmonday at 10:30\n"
    result = CliRunner().invoke(
        cli, ["flow", "chat", str(flow), "--config", str(path)], input=lines
    )
    assert result.exit_code == 0, result.output
    agent = [line for line in result.output.splitlines() if line.startswith("agent: ")]
    assert agent[0].startswith("agent: Thanks for calling Bright Smile Dental.")
    assert agent[1].startswith("agent: We're open Monday to Friday")
    assert agent[2:4] == [
        "agent: What is your first name?",
        "agent: Thanks, Maria. Which day suits you?",  # answered, moved on, asked
    ]
    assert '  [node: ask_time | name="maria"]' in result.output
    # The refused booking takes the error branch: a transfer.
    assert agent[-1] == (
        "agent: I couldn't book that online, so I'll put you through to the front desk."
    )
    assert f"[the call is transferred to {DESK}]" in result.output


def test_flow_chat_without_an_llm_still_runs_scripts_and_keywords(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["flow", "chat", str(EXAMPLE), "--no-llm"], input="hours\nno thanks\n"
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-3:] == [
        "agent: Thanks for calling Bright Smile Dental. Goodbye!",
        "[the agent hangs up]",
        "  [node: bye]",
    ]


def test_config_check_refuses_a_broken_flow(tmp_path: Path) -> None:
    path = tmp_path / "voicekit.toml"
    path.write_text(
        '[stt]\nprovider = "fake"\n[llm]\nprovider = "fake"\n[tts]\nprovider = "fake"\n'
        '[telephony]\nprovider = "fake"\n'
        '[flow.inline]\nstart = "x"\n[[flow.inline.nodes]]\nid = "a"\nscript = "Hi"\n'
    )
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert "[flow] inline: 1 problem(s)" in result.output
    assert "start: there is no node 'x'" in result.output


def test_flow_warm_fills_the_cache_once_and_a_second_run_finds_it(tmp_path: Path) -> None:
    cache_dir = tmp_path / "phrases"
    path = config(
        tmp_path,
        '[tts]\nprovider = "fake"\n[providers.fake.tts]\nfirst_audio_ms = 0\n'
        "realtime_factor = 0\n[server]\n"
        f'phrase_cache_dir = "{cache_dir}"\n',
    )
    first = CliRunner().invoke(cli, ["flow", "warm", str(EXAMPLE), "--config", str(path)])
    assert first.exit_code == 0, first.output
    # The example's known texts (scripts without caller details, reprompts, the flow's
    # apology) and [agent]'s filler and farewell; not "You're booked, {{name}}: ...".
    head = first.output.splitlines()[0]
    assert head.startswith("pcmu calls (fake audio in mulaw@8000): ")
    count = int(head.split(": ")[1].split()[0])
    assert count >= 8 and f"{count} synthesised" in head and "0 failed" in head
    assert len(list(cache_dir.glob("*.phrase"))) == count
    again = CliRunner().invoke(
        cli, ["flow", "warm", str(EXAMPLE), "--config", str(path), "--format", "l16"]
    )
    assert again.exit_code == 0, again.output
    assert f"{count} synthesised" in again.output  # another format: other audio
    third = CliRunner().invoke(cli, ["flow", "warm", str(EXAMPLE), "--config", str(path)])
    assert f"0 synthesised (0.0 s of audio), {count} already cached" in third.output
    assert len(list(cache_dir.glob("*.phrase"))) == 2 * count


def test_flow_warm_needs_a_directory(tmp_path: Path) -> None:
    path = config(tmp_path, '[tts]\nprovider = "fake"\n')
    result = CliRunner().invoke(cli, ["flow", "warm", str(EXAMPLE), "--config", str(path)])
    assert result.exit_code == 2
    assert "set [server] phrase_cache_dir" in result.output


def test_flow_warm_follows_the_configured_codec_and_reports_a_directory_it_cannot_write(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    path = config(
        tmp_path,
        '[tts]\nprovider = "fake"\n[providers.fake.tts]\nfirst_audio_ms = 0\n'
        'realtime_factor = 0\n[providers.telnyx]\ncodec = "L16"\n',
    )
    result = CliRunner().invoke(
        cli, ["flow", "warm", str(EXAMPLE), "--config", str(path), "--dir", str(blocker / "x")]
    )
    assert result.exit_code == 1
    head = result.output.splitlines()[0]
    assert head.startswith("l16 calls (fake audio in pcm_s16le@16000): ")  # the codec's
    assert f"cannot write to {blocker / 'x'}" in result.output
    assert "0 synthesised" in head and "failed" in head


def test_flow_warm_without_a_file_warms_the_built_in_flow(tmp_path: Path) -> None:
    (tmp_path / "voicekit.toml").write_text(
        '[tts]\nprovider = "fake"\n[providers.fake.tts]\nfirst_audio_ms = 0\n'
        f'realtime_factor = 0\n[server]\nphrase_cache_dir = "{tmp_path / "c"}"\n'
    )
    result = CliRunner().invoke(cli, ["flow", "warm", "-v"])  # ./voicekit.toml is found
    assert result.exit_code == 0, result.output
    assert "ok     Thanks for calling Harbor View Dental. Goodbye!" in result.output
    assert "{{day}}" not in result.output and "noted" not in result.output
