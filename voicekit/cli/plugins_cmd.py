"""``voicekit plugins``: what is installed, what each plugin provides, what is missing."""

from __future__ import annotations

import json
from typing import Any

import click

from voicekit.cli.main import cli, reports_errors
from voicekit.plugins import PluginInfo, load_plugins


def plugin_as_dict(info: PluginInfo) -> dict[str, Any]:
    providers: dict[str, list[str]] = {}
    for kind, name in info.providers:
        providers.setdefault(kind, []).append(name)
    return {
        "name": info.name,
        "module": info.module,
        "distribution": info.distribution,
        "version": info.version,
        "providers": providers,
        "tools": info.tools,
        "missing": info.missing,
        "install": info.install_hint,
        "error": info.error,
    }


def _line(info: PluginInfo) -> str:
    dist = f"{info.distribution} {info.version}" if info.distribution else "(not packaged)"
    parts = [f"{info.name:<12} {dist}"]
    offers = [f"{kind}:{name}" for kind, name in info.providers]
    offers += [f"tool:{name}" for name in info.tools]
    parts.append(", ".join(offers) if offers else "no providers")
    text = "  ".join(parts)
    if info.missing:
        text += f"\n{'':<12} missing {', '.join(info.missing)}: {info.install_hint}"
    if info.error:
        text += f"\n{'':<12} ERROR {info.error}"
    return text


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print the same information as JSON.")
@reports_errors
def plugins_command(as_json: bool) -> None:
    """List plugins, their providers by kind, their tools, and extras still to install."""
    manager = load_plugins()
    infos = sorted(manager.plugins.values(), key=lambda p: p.name)
    if as_json:
        click.echo(json.dumps([plugin_as_dict(i) for i in infos], indent=2))
        return
    if not infos:
        click.echo("no plugins loaded (check VOICEKIT_LOAD_PLUGINS / VOICEKIT_BLOCK_PLUGINS)")
    for info in infos:
        click.echo(_line(info))
