"""Registers every subcommand on the ``voicekit`` group (one module per command)."""

from voicekit.cli import (  # noqa: F401
    config_cmd,
    flow_cmd,
    plugins_cmd,
    serve_cmd,
    simulate_cmd,
    speech_cmds,
    warm_cmd,
)
