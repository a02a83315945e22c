"""``voicekit``: the command group, and the handling every command shares.

A voicekit error ends the command with exit status 2 and its message on stderr (no
traceback: the message already says what to fix). Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

from voicekit._version import __version__
from voicekit.errors import VoiceKitError

__all__ = ["cli", "configure_logging", "main", "reports_errors"]

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


def reports_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a VoiceKitError into a clean message and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except VoiceKitError as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(2) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
CHATTY_LIBRARIES = ("websockets", "httpcore", "hpack", "httpx", "uvicorn.protocols")


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
    from voicekit.cli import commands  # noqa: F401  (registers the subcommands)

    cli()
