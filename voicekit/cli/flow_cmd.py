"""``voicekit flow check`` and ``voicekit flow chat``: a flow file, validated and drawn,
or run as a typed conversation."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import click

from voicekit.cli.main import cli, config_option, reports_errors
from voicekit.config import load_settings
from voicekit.config.loader import CONFIG_ENV
from voicekit.config.resolve import create_provider
from voicekit.config.settings import VoiceKitSettings
from voicekit.errors import VoiceKitError
from voicekit.flows import load_flow
from voicekit.flows.chat import chat
from voicekit.flows.check import edges, reachable
from voicekit.flows.model import ConversationNode, Flow, FunctionNode, TransferNode
from voicekit.llm import LLM

flow_file = click.argument("file", type=click.Path(dir_okay=False, path_type=Path))


@cli.group("flow")
def flow_group() -> None:
    """Check and try call flows (docs/flows.md)."""


def _graph(flow: Flow) -> list[str]:
    lines = [f"start: {flow.start} (first speaker: {flow.first_speaker})"]
    live = reachable(flow)
    for node in flow.nodes:
        what: str = node.type
        if isinstance(node, ConversationNode):
            what += " (script)" if node.script is not None else " (prompt)"
            if node.extract:
                names = ", ".join(f.name + ("*" if f.mandatory else "") for f in node.extract)
                what += f", extracts {names}"
        elif isinstance(node, FunctionNode):
            what += f" ({node.method} {node.url.split('?')[0]})"
        elif isinstance(node, TransferNode):
            what += f" (to {node.to})"
        lines.append(f"{node.id}: {what}" + ("" if node.id in live else "  UNREACHABLE"))
        if isinstance(node, ConversationNode):
            for t in node.transitions:
                if t.always:
                    how = "always"
                else:
                    parts = []
                    if t.keywords:
                        parts.append("keywords " + ", ".join(repr(k) for k in t.keywords))
                    if t.regex:
                        parts.append(f"regex /{t.regex}/")
                    if t.when:
                        parts.append(f"when {t.when!r} (LLM)")
                    how = "; ".join(parts)
                lines.append(f"  -> {t.to}: {how}")
        else:
            lines += [f"  -> {target}: {field}" for field, target in edges(node)]
    return lines


def settings_for_flow_commands(config_path: str | None) -> tuple[VoiceKitSettings, bool]:
    """The settings the flow commands use: --config, else $VOICEKIT_CONFIG, else
    ./voicekit.toml when there is one; and whether any config was found."""
    path = config_path or os.environ.get(CONFIG_ENV) or None
    if path is None and Path("voicekit.toml").exists():
        path = "voicekit.toml"
    return load_settings(path), path is not None


def _allowlist(config_path: str | None) -> list[str] | None:
    settings, configured = settings_for_flow_commands(config_path)
    return list(settings.agent.transfer_allowlist) if configured else None


@flow_group.command("check")
@flow_file
@config_option
@reports_errors
def flow_check(file: Path, config_path: str | None) -> None:
    """Validate FILE and print its graph: nodes, transitions and what decides each.

    Transfers are checked against [agent] transfer_allowlist of --config (or of
    ./voicekit.toml). Exits 2 listing every problem, by node and field.
    """
    allowlist = _allowlist(config_path)
    flow = load_flow(file, transfer_allowlist=allowlist)
    for line in _graph(flow):
        click.echo(line)
    if allowlist is None:
        click.echo(
            "note: no config given: transfer destinations were not checked against "
            "[agent] transfer_allowlist (pass --config)"
        )
    click.echo(f"ok: {file}: {len(flow.nodes)} nodes")


def _chat_llm(config_path: str | None, use_llm: bool) -> tuple[LLM | None, str]:
    settings = load_settings(config_path)
    if not use_llm:
        click.echo(
            "note: --no-llm: scripts, keywords, regex and patterns work; prompt nodes say "
            "their reprompt and worded (when) transitions never fire",
            err=True,
        )
        return None, settings.agent.instructions
    try:
        return create_provider(settings, "llm"), settings.agent.instructions
    except VoiceKitError as exc:
        click.echo(
            f"note: no LLM ({exc}); scripts, keywords, regex and patterns work, prompt "
            "nodes and worded transitions do not",
            err=True,
        )
        return None, settings.agent.instructions


@flow_group.command("chat")
@flow_file
@config_option
@click.option("--no-llm", is_flag=True, help="Run without the configured LLM.")
@reports_errors
def flow_chat(file: Path, config_path: str | None, no_llm: bool) -> None:
    """Run FILE as a typed conversation: you are the caller.

    Each agent reply is printed as `agent: ...`, then the node and variables. Caller lines
    are read from stdin (one per line) when it is not a terminal. The LLM is [llm] of
    --config; webhooks are really called.
    """
    settings_allowlist = _allowlist(config_path)
    flow = load_flow(file, transfer_allowlist=settings_allowlist)
    llm, instructions = _chat_llm(config_path, not no_llm)
    interactive = sys.stdin.isatty()

    def prompt() -> None:
        if interactive:
            click.echo("you: ", nl=False)

    async def run() -> None:
        if llm is not None:
            async with llm:
                await chat(
                    flow, sys.stdin, click.echo, llm=llm, instructions=instructions, prompt=prompt
                )
        else:
            await chat(
                flow, sys.stdin, click.echo, llm=None, instructions=instructions, prompt=prompt
            )

    anyio.run(run)
