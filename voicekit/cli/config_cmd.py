"""``voicekit config check``: validate settings and show the effective values, masked."""

from __future__ import annotations

import json

import click

from voicekit.cli.main import cli, config_option, reports_errors
from voicekit.config import load_settings, masked_settings, resolve_providers
from voicekit.config.render import to_toml
from voicekit.config.resolve import config_warnings
from voicekit.flows.runtime import flow_from_settings
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
    settings = load_settings(config_path)
    manager = load_plugins()
    for warning in config_warnings(settings, manager.registry, plugins=manager.plugins):
        click.echo(f"warning: {warning}", err=True)
    flow_from_settings(settings)  # a broken flow is a broken config: every problem named
    resolved = resolve_providers(settings, manager.registry)
    data = masked_settings(settings, resolved, manager.registry)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        source = config_path or "(no config file: defaults and environment)"
        click.echo(f"# effective settings from {source}; secrets masked\n")
        click.echo(to_toml(data), nl=False)
