"""The example third-party plugin is discovered, listed and selectable like a first-party one.

The distribution in examples/voicekit-echo-plugin is really installed with pip (no
network: hatchling comes from the test environment), into a directory of its own that
the test puts on the path, so the test environment itself is left unchanged. The listing
is checked through ``python -m voicekit`` in a process of its own; the other checks run
the same command line in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib import invalidate_caches
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.conftest import run_temp_dir
from voicekit import Message, TextDelta, Usage
from voicekit.cli import commands  # noqa: F401  (registers the subcommands)
from voicekit.cli.main import cli
from voicekit.config import load_settings, resolve_providers
from voicekit.plugins import load_plugins

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SRC = ROOT / "examples" / "voicekit-echo-plugin"


@pytest.fixture(scope="module")
def echo_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin installed once per run: the first worker to finish installing publishes
    its directory (an atomic rename); a worker that comes later uses it."""
    shared = run_temp_dir(tmp_path_factory) / "echo-site"
    if shared.is_dir():
        return shared
    target = tmp_path_factory.mktemp("echo-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-cache-dir",  # nothing written to the user's pip cache
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(PLUGIN_SRC),
        ],
        check=True,
        capture_output=True,
    )
    assert list(target.glob("voicekit_echo_plugin-1.0.0.dist-info"))
    try:
        target.rename(shared)
    except OSError:  # another worker published it first: theirs is the same
        return target
    return shared


@pytest.fixture
def on_path(echo_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(echo_site))
    invalidate_caches()
    yield echo_site
    sys.modules.pop("voicekit_echo", None)


def run_cli(
    site: Path, *args: str, cwd: Path | None = None, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m voicekit`` with the plugin on the path and no stray VOICEKIT_* vars."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEKIT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "voicekit", *args], capture_output=True, text=True, env=env, cwd=cwd
    )


def test_listed_by_voicekit_plugins(echo_site: Path) -> None:
    result = run_cli(echo_site, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    echo = next(p for p in json.loads(result.stdout) if p["name"] == "echo")
    assert echo["distribution"] == "voicekit-echo-plugin" and echo["version"] == "1.0.0"
    assert echo["providers"] == {"llm": ["echo"]} and echo["error"] is None
    text = run_cli(echo_site, "plugins").stdout
    assert any(x.startswith("echo ") and "llm:echo" in x for x in text.splitlines())


def run_cli_in_process(*args: str, env: dict[str, str] | None = None) -> Result:
    """The command line in this process, with the plugin on the path (``on_path``)."""
    return CliRunner(env=env).invoke(cli, list(args))


def test_named_among_installed_providers(on_path: Path, tmp_path: Path) -> None:
    (tmp_path / "voicekit.toml").write_text('[llm]\nprovider = "ecko"\n')
    result = run_cli_in_process("config", "check", "--config", str(tmp_path / "voicekit.toml"))
    assert result.exit_code == 2
    assert "no llm provider named 'ecko'; installed llm providers: " in result.stderr
    listed = result.stderr.split("installed llm providers: ")[1].split(".")[0].split(", ")
    assert "echo" in listed


def test_blocked_like_any_plugin(on_path: Path) -> None:
    listed = run_cli_in_process("plugins", "--json")
    assert "echo" in {p["name"] for p in json.loads(listed.stdout)}
    result = run_cli_in_process("plugins", "--json", env={"VOICEKIT_BLOCK_PLUGINS": "echo"})
    names = {p["name"] for p in json.loads(result.stdout)}
    assert "echo" not in names and "elevenlabs" in names


@pytest.mark.anyio
async def test_selected_from_config_and_streams(on_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "voicekit.toml"
    config.write_text('[llm]\nprovider = "echo"\n[providers.echo]\nprefix = "Echo: "\n')
    settings = load_settings(config)
    manager = load_plugins({})
    resolved = resolve_providers(settings, manager.registry, kinds=("llm",))
    assert resolved.names["llm"] == "echo"
    llm = manager.registry.create("llm", "echo", settings.provider_options("echo"))
    events = [e async for e in llm.stream([Message("user", "hello there")])]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Echo: hello there"
    assert isinstance(events[-1], Usage) and events[-1].output_tokens == 3
