"""Registers every subcommand on the ``voicekit`` group (one module per command)."""

from voicekit.cli import config_cmd, plugins_cmd  # noqa: F401
