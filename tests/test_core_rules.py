"""Rules of the core from DESIGN.md: one drawn error tree, no plugin imported by the core."""

from __future__ import annotations

import inspect
import subprocess
import sys

import voicekit
from voicekit import errors


def python_prints(code: str) -> str:
    """What ``code`` prints, run by a fresh interpreter (imports start from nothing)."""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return run.stdout.strip()


def test_error_tree_docstring_draws_every_error_class() -> None:
    doc = errors.__doc__ or ""
    classes = [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.VoiceKitError) and not obj.__name__.startswith("_")
    ]
    assert len(classes) >= 7
    for cls in classes:
        assert cls.__name__ in doc, f"{cls.__name__} is missing from the tree in voicekit.errors"


def test_provider_error_carries_retryable_and_status() -> None:
    err = errors.ProviderError("rate limited", provider="openai", retryable=True, status_code=429)
    assert err.retryable and err.status_code == 429
    assert str(err) == "[openai] rate limited (status 429)"
    assert not errors.ProviderAuthError("bad key", status_code=401).retryable
    assert errors.ProviderTimeoutError("slow").retryable
    assert issubclass(errors.AudioFormatError, ValueError)


def test_importing_voicekit_imports_no_plugin_and_no_sdk() -> None:
    code = (
        "import sys, voicekit, voicekit.cli, voicekit.config, voicekit.plugins;"
        "[getattr(voicekit, name) for name in voicekit.__all__];"
        "bad = sorted(m for m in sys.modules if m.startswith('voicekit_') or "
        "m.split('.')[0] in {'openai', 'anthropic', 'starlette', 'uvicorn', 'nacl', 'piper',"
        " 'pocketsphinx'});"
        "print(','.join(bad))"
    )
    assert python_prints(code) == ""


def test_public_api_names_exist() -> None:
    for name in voicekit.__all__:
        assert hasattr(voicekit, name), name
    assert set(voicekit.__all__) <= set(dir(voicekit))
    public = sorted(n for n in voicekit.__all__ if not n.startswith("__"))
    assert [n for n in dir(voicekit) if not n.startswith("__")] == public  # no helpers
    assert not hasattr(voicekit, "nope")  # an AttributeError, as for any module


def test_each_layer_is_imported_when_first_used() -> None:
    """``import voicekit`` loads no layer; a name loads its own module and what that needs."""
    code = (
        "import sys, voicekit;"
        "bare = sorted(m for m in sys.modules if m.startswith('voicekit'));"
        "from voicekit import ULAW_8K;"
        "audio = {m for m in sys.modules if m.startswith('voicekit')};"
        "print(bare, sorted(audio & {'voicekit.server', 'voicekit.session', 'voicekit.flows',"
        " 'voicekit.config', 'voicekit.plugins'}))"
    )
    assert python_prints(code) == "['voicekit'] []"


def test_a_command_imports_its_own_module_only() -> None:
    code = (
        "import sys; from click.testing import CliRunner; from voicekit.cli.main import cli;"
        "result = CliRunner().invoke(cli, ['plugins', '--json']); assert result.exit_code == 0;"
        "print(sorted(m for m in sys.modules if m.startswith('voicekit.cli.')))"
    )
    assert python_prints(code) == "['voicekit.cli.main', 'voicekit.cli.plugins_cmd']"


def test_every_command_is_where_the_group_looks_for_it() -> None:
    from voicekit.cli import commands  # noqa: F401  (registers them all)
    from voicekit.cli.main import COMMAND_MODULES, cli

    assert set(cli.commands) == set(COMMAND_MODULES)
    for name, modules in COMMAND_MODULES.items():
        assert cli.commands[name].callback.__module__ == modules[0], name  # type: ignore[union-attr]
    assert set(cli.commands["flow"].commands) == {"check", "chat", "warm"}  # type: ignore[attr-defined]


def test_python_dash_m_runs_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "voicekit", "--help"], capture_output=True, text=True, check=True
    )
    assert "plugins" in out.stdout and "config" in out.stdout


def test_the_streaming_helpers_api_is_pinned() -> None:
    """docs/plugins.md offers these to plugin authors: removing or renaming one breaks them."""
    import voicekit.streaming

    assert voicekit.streaming.__all__ == [
        "HTTP1_ALPN",
        "HTTP2_ALPN",
        "BackgroundTasks",
        "EventTooLarge",
        "PersistentWebSocket",
        "ReconnectBudget",
        "RetryPolicy",
        "ToolCallAssembler",
        "ToolCallLimit",
        "client_tls",
        "close_websocket",
        "connect_websocket",
        "network_error",
        "parse_tool_arguments",
        "retry_after_s",
        "send_message",
        "spawn",
        "sse_events",
        "status_error",
    ]
    for name in voicekit.streaming.__all__:
        if not name.isupper():  # constants are documented where they are defined
            assert getattr(voicekit.streaming, name).__doc__, name


THREADS = """
import sys, threading, voicekit
names = sys.argv[1:]
barrier = threading.Barrier(len(names))
failures = []
def first_use(name):
    barrier.wait()
    try:
        getattr(voicekit, name)
    except BaseException as exc:
        failures.append(repr(exc))
threads = [threading.Thread(target=first_use, args=(n,)) for n in names]
for t in threads: t.start()
for t in threads: t.join()
print(failures, voicekit.errors.ConfigError.__name__)
"""


def test_first_use_from_many_threads_at_once_imports_cleanly() -> None:
    """voicekit's modules import each other: lazy imports from threads take turns."""
    names = ["create_provider", "VoiceKitSettings", "Flow", "create_app", "CallSession"]
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", THREADS, *names[n:], *names[:n]],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    assert [run.communicate(timeout=60)[0].strip() for run in runs] == ["[] ConfigError"] * 2


def test_a_command_added_by_user_code_is_not_replaced() -> None:
    import click
    from click.testing import CliRunner

    from voicekit.cli.main import cli

    @click.command("say")
    def own_say() -> None:
        click.echo("the user's own say")

    original = cli.commands.get("say")
    cli.add_command(own_say)
    try:
        assert CliRunner().invoke(cli, ["say"]).output == "the user's own say\n"
        typo = CliRunner().invoke(cli, ["simulat"])
        assert typo.exit_code == 2 and "Did you mean 'simulate'?" in typo.output
    finally:
        if original is None:
            del cli.commands["say"]
        else:
            cli.commands["say"] = original
