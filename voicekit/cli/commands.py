"""Registers every subcommand on the ``voicekit`` group (one module per command)."""

from voicekit.cli import config_cmd, flow_cmd, plugins_cmd, serve_cmd, speech_cmds  # noqa: F401
