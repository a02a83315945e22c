"""``voicekit config check``: validate settings and show the effective values, masked."""

from __future__ import annotations

import json

import click

from voicekit.cli.main import cli, config_option, reports_errors
from voicekit.config import load_settings, masked_settings, resolve_providers
from voicekit.config.render import to_toml
from voicekit.config.resolve import config_warnings, telephony_configured
from voicekit.config.settings import NO_LLM
from voicekit.errors import ConfigError
from voicekit.flows.builtin import BUILTIN_FLOW, uses_builtin_flow, with_builtin_flow
from voicekit.flows.runtime import answering_problems, flow_from_settings
from voicekit.plugins import load_plugins


@cli.group("config")
def config_group() -> None:
    """Inspect and validate configuration."""


@config_group.command("check")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the effective settings as JSON.")
@reports_errors
def config_check(config_path: str | None, as_json: bool) -> None:
    """Validate settings and print the effective values with every secret masked.

    Exits 2 naming the file or variable, the field and what is allowed when anything is
    wrong.
    """
    settings = with_builtin_flow(load_settings(config_path))
    manager = load_plugins()
    registry = manager.registry
    for warning in config_warnings(settings, registry, plugins=manager.plugins):
        click.echo(f"warning: {warning}", err=True)
    flow = flow_from_settings(settings)  # a broken flow is a broken config: every problem
    problems = answering_problems(flow, has_llm=settings.llm.provider != NO_LLM)
    if problems:
        raise ConfigError("\n".join(problems))
    notes = []
    if uses_builtin_flow(load_settings(config_path)):
        notes.append(
            f"the agent is the built-in front desk flow ({BUILTIN_FLOW}): set [flow] file "
            "or [agent] instructions to make it yours"
        )
    if telephony_configured(settings, registry):
        resolved = resolve_providers(settings, registry)
    else:  # nothing of the telephony is set up yet: fine for `voicekit simulate`
        resolved = resolve_providers(settings, registry, kinds=("stt", "llm", "tts"))
        notes.append(
            f"telephony {settings.telephony.provider!r} is not configured: `voicekit serve` "
            "needs its keys and [server] public_url to answer real calls (docs/quickstart.md); "
            "`voicekit simulate` runs calls without them"
        )
    for note in notes:
        click.echo(f"note: {note}", err=True)
    data = masked_settings(settings, resolved, registry)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        source = config_path or "(no config file: defaults and environment)"
        click.echo(f"# effective settings from {source}; secrets masked\n")
        click.echo(to_toml(data), nl=False)
