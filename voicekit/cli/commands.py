"""Registers every subcommand on the ``voicekit`` group at once.

The group imports each command's module when that command is used
(``voicekit.cli.main.COMMAND_MODULES``); importing this module registers them all, for
code that inspects ``cli.commands`` directly.
"""

from voicekit.cli import (  # noqa: F401
    config_cmd,
    flow_cmd,
    plugins_cmd,
    serve_cmd,
    simulate_cmd,
    speech_cmds,
    warm_cmd,
)
