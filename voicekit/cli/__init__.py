"""The ``voicekit`` command line."""

from voicekit.cli.main import cli, main

__all__ = ["cli", "main"]
