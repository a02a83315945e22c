"""Reading a flow from a TOML or JSON file, or from ``[flow] inline``, with every problem
reported at once and named by node and field."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from voicekit.errors import ConfigError
from voicekit.flows.check import problems
from voicekit.flows.model import Flow

__all__ = ["FlowError", "load_flow", "parse_flow"]

MAX_FLOW_BYTES = 1 << 20
MAX_SHOWN = 50  # problems listed in the message (all are in .problems)


class FlowError(ConfigError):
    """A flow file that cannot run; ``problems`` lists each one."""

    def __init__(self, source: str, found: Sequence[str]) -> None:
        self.source = source
        self.problems = list(found)
        shown = [p if len(p) <= 500 else p[:500] + "..." for p in self.problems[:MAX_SHOWN]]
        if len(self.problems) > MAX_SHOWN:
            shown.append(f"... and {len(self.problems) - MAX_SHOWN} more")
        lines = "\n".join(f"  - {p}" for p in shown)
        super().__init__(f"{source}: {len(self.problems)} problem(s) in the flow:\n{lines}")


def _where(loc: tuple[int | str, ...], data: Mapping[str, Any]) -> str:
    """A pydantic error location as a reader finds it: ``node 'ask_name': extract[0].type``."""
    parts = list(loc)
    prefix = ""
    if len(parts) >= 2 and parts[0] == "nodes" and isinstance(parts[1], int):
        index = parts[1]
        nodes = data.get("nodes")
        node = nodes[index] if isinstance(nodes, list) and index < len(nodes) else None
        node_id = node.get("id") if isinstance(node, Mapping) else None
        prefix = f"node {node_id!r}: " if isinstance(node_id, str) else f"nodes[{index}]: "
        parts = parts[2:]
        if parts and parts[0] in ("conversation", "function", "transfer", "ending"):
            parts = parts[1:]  # the union's tag, not a field
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    if path:
        return prefix + path
    return prefix.removesuffix(": ") or "(the flow)"


def parse_flow(
    data: Mapping[str, Any],
    *,
    source: str = "flow",
    transfer_allowlist: Sequence[str] | None = None,
) -> Flow:
    """Validate a flow given as data; raises :class:`FlowError` naming every problem."""
    try:
        flow = Flow.model_validate(data)
    except RecursionError:
        raise FlowError(source, ["the flow is nested too deeply"]) from None
    except ValidationError as exc:
        found = [
            f"{_where(e['loc'], data)}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise FlowError(source, found) from None
    try:
        found = problems(flow, transfer_allowlist=transfer_allowlist)
    except RecursionError:
        found = ["nodes: the flow's graph is too deep to check (a chain of hundreds of nodes)"]
    if found:
        raise FlowError(source, found)
    return flow


def load_flow(path: str | Path, *, transfer_allowlist: Sequence[str] | None = None) -> Flow:
    """Read and validate a flow file: ``.json`` is JSON, anything else TOML."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the flow file {file}: {exc.strerror or exc}") from None
    if len(raw) > MAX_FLOW_BYTES:
        raise ConfigError(f"[flow] file: {file} is over {MAX_FLOW_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
        data = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if file.suffix.lower() == ".json" else "TOML (not .json: read as TOML)"
        raise ConfigError(f"{file}: not valid {kind}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{file}: nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: a flow is a table (an object), not {type(data).__name__}")
    return parse_flow(data, source=str(file), transfer_allowlist=transfer_allowlist)
