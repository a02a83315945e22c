"""Every expected failure of the CLI: one ``error:`` line that says what to fix, exit
status 2, no traceback. Failures that happen before anything starts are checked in
process; those on the way to a running server (a busy port, a missing extra, a dead
Telnyx) are run as a user runs them, in a process of their own."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from voicekit.cli import commands  # noqa: F401  (registers the subcommands)
from voicekit.cli.main import cli

PUBLIC_KEY = "A" * 43 + "="
BASE = """
[stt]
provider = "fake"
[llm]
provider = "fake"
[tts]
provider = "fake"
[telephony]
provider = "telnyx"
[server]
host = "127.0.0.1"
port = {port}
public_url = "https://voice.example.com"
[providers.telnyx]
api_key = "test-telnyx-key"
public_key = "{public_key}"
base_url = "http://127.0.0.1:{dead_port}/v2"
{telnyx}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(tmp_path: Path, *, port: int | None = None, telnyx: str = "") -> Path:
    path = tmp_path / "voicekit.toml"
    path.write_text(
        BASE.format(
            port=port or free_port(), public_key=PUBLIC_KEY, dead_port=free_port(), telnyx=telnyx
        )
    )
    return path


def voicekit(*args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = f"{prelude}\nimport sys\nfrom voicekit.cli import main\nsys.argv = ['voicekit', *sys.argv[1:]]\nmain()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


def voicekit_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line in this process, its outcome shaped as a finished process's; an
    exception other than the exit itself counts as a traceback."""
    result = CliRunner().invoke(cli, list(args))
    traceback = "" if isinstance(result.exception, SystemExit | None) else "Traceback"
    return subprocess.CompletedProcess(
        ["voicekit", *args], result.exit_code, result.stdout, result.stderr + traceback
    )


def assert_clean_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_dial_without_a_connection_id(tmp_path: Path) -> None:
    result = voicekit_in_process("dial", "+15557654321", "--config", str(config(tmp_path)))
    assert_clean_error(result, "connection_id")
    assert "Started server" not in result.stderr  # checked before the server starts


def test_dial_when_telnyx_cannot_be_reached(tmp_path: Path) -> None:
    path = config(tmp_path, telnyx='connection_id = "c1"\nfrom_number = "+15550009999"')
    result = voicekit("dial", "+15557654321", "--config", str(path))
    assert_clean_error(result, "cannot reach Telnyx at http://127.0.0.1:")


@pytest.mark.parametrize("number", ["12345", "+1 555", "sip:nohost"])
def test_dial_checks_the_number_before_anything(tmp_path: Path, number: str) -> None:
    result = voicekit_in_process("dial", number, "--config", str(config(tmp_path)))
    assert_clean_error(result, "E.164", number)


def test_serve_on_a_port_already_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = voicekit("serve", "--config", str(config(tmp_path, port=port)))
    assert_clean_error(result, f"cannot listen on 127.0.0.1:{port}", "--port")


BLOCK_SERVER_EXTRA = """
import importlib.abc
class _Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("starlette", "uvicorn"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
import sys
sys.meta_path.insert(0, _Missing())
"""


def test_serve_without_the_server_extra(tmp_path: Path) -> None:
    result = voicekit("serve", "--config", str(config(tmp_path)), prelude=BLOCK_SERVER_EXTRA)
    root = Path(__file__).resolve().parents[1]  # the suite runs from a checkout (pip -e)
    assert_clean_error(result, "'server' extra", f'pip install -e "{root}[server]"')
