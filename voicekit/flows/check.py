"""Rules that span a flow's nodes, each problem named by node and field.

Run when a flow is loaded (``voicekit serve`` refuses to start on a broken flow, rather
than a caller finding the broken branch) and by ``voicekit flow check``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from voicekit.flows.model import (
    BUILTIN_VARIABLES,
    ConversationNode,
    EndingNode,
    Flow,
    FunctionNode,
    TransferNode,
)
from voicekit.flows.templates import ENV_PREFIX, names_in
from voicekit.session.actions import CallActions
from voicekit.telephony import CallInfo

__all__ = ["edges", "known_variables", "problems", "reachable"]

AnyNode = ConversationNode | FunctionNode | TransferNode | EndingNode


def edges(node: AnyNode) -> list[tuple[str, str]]:
    """``(field, target)`` for every way out of ``node``."""
    if isinstance(node, ConversationNode):
        return [(f"transitions[{i}].to", t.to) for i, t in enumerate(node.transitions)]
    if isinstance(node, FunctionNode):
        out = [("next", node.next)]
        if node.on_error is not None:
            out.append(("on_error", node.on_error))
        return out
    return []


def reachable(flow: Flow) -> set[str]:
    seen: set[str] = set()
    todo = [flow.start] if flow.has_node(flow.start) else []
    while todo:
        node_id = todo.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        todo += [t for _, t in edges(flow.node(node_id)) if flow.has_node(t)]
    return seen


def known_variables(flow: Flow) -> set[str]:
    names = set(BUILTIN_VARIABLES) | set(flow.variables)
    for node in flow.nodes:
        if isinstance(node, ConversationNode):
            names |= {f.name for f in node.extract}
        elif isinstance(node, FunctionNode):
            names |= set(node.save)
    return names


def _templates(node: AnyNode) -> Iterator[tuple[str, object, bool]]:
    """``(field, value, may_use_env)`` for every templated field of ``node``."""
    if isinstance(node, ConversationNode):
        yield "script" if node.script is not None else "prompt", node.script or node.prompt, False
        for i, f in enumerate(node.extract):
            yield f"extract[{i}].reprompt", f.reprompt, False
    elif isinstance(node, FunctionNode):
        yield "url", node.url, True
        yield "headers", node.headers, True
        yield "body", node.body, True
    elif isinstance(node, TransferNode | EndingNode):
        yield "script", node.script, False


def _cycles_without_caller(flow: Flow) -> list[list[str]]:
    """Loops made only of function nodes: they would call webhooks forever without the
    caller ever saying a word."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: finished

    def visit(node_id: str, path: list[str]) -> None:
        state[node_id] = 1
        node = flow.node(node_id)
        if isinstance(node, FunctionNode):
            for _, target in edges(node):
                if not flow.has_node(target) or not isinstance(flow.node(target), FunctionNode):
                    continue
                if state.get(target) == 1:
                    found.append([*path[path.index(target) :], target])
                elif target not in state:
                    visit(target, [*path, target])
        state[node_id] = 2

    for node in flow.nodes:
        if isinstance(node, FunctionNode) and node.id not in state:
            visit(node.id, [node.id])
    return found


def problems(flow: Flow, *, transfer_allowlist: Sequence[str] | None = None) -> list[str]:
    """Every cross-node problem of ``flow``; empty when it is sound. ``transfer_allowlist``
    (``[agent] transfer_allowlist``) is checked when given."""
    out: list[str] = []
    seen: set[str] = set()
    for node in flow.nodes:
        if node.id in seen:
            out.append(f"node {node.id!r}: id: used by more than one node")
        seen.add(node.id)
    ids = ", ".join(sorted(seen))
    if not flow.has_node(flow.start):
        out.append(f"start: there is no node {flow.start!r} (nodes are: {ids})")
    for node in flow.nodes:
        for field, target in edges(node):
            if not flow.has_node(target):
                out.append(f"node {node.id!r}: {field}: there is no node {target!r}")
    if flow.has_node(flow.start):
        live = reachable(flow)
        for node in flow.nodes:
            if node.id not in live:
                out.append(f"node {node.id!r}: unreachable from start {flow.start!r}")
    for cycle in _cycles_without_caller(flow):
        out.append(
            f"node {cycle[0]!r}: next: a loop of function nodes with no caller turn in it: "
            + " -> ".join(cycle)
        )
    known = known_variables(flow)
    for name in sorted(set(flow.variables) & set(BUILTIN_VARIABLES)):
        out.append(
            f"variables: {name!r} is filled by the call itself; give your variable another name"
        )
    flow_wide = [("instructions", flow.instructions, False), ("apology", flow.apology, False)]
    for field, value, may_use_env in flow_wide + [
        (f"node {n.id!r}: {f}", v, env) for n in flow.nodes for f, v, env in _templates(n)
    ]:
        for name in names_in(value):
            if name.startswith(ENV_PREFIX):
                if not may_use_env:
                    out.append(
                        f"{field}: {{{{{name}}}}}: environment values are secrets; only a "
                        "function node's url, headers and body may use them"
                    )
            elif name not in known:
                out.append(
                    f"{field}: {{{{{name}}}}} is not a variable of this flow (known: "
                    f"{', '.join(sorted(known))})"
                )
    for node in flow.nodes:
        if isinstance(node, FunctionNode):
            authority = node.url.split("://", 1)[-1].split("/", 1)[0]
            if any(not n.startswith(ENV_PREFIX) for n in names_in(authority)):
                out.append(
                    f"node {node.id!r}: url: a variable may not be in the host (a caller's "
                    "words would choose where the request goes); use it in the path or body"
                )
        if isinstance(node, ConversationNode):
            tool_names: dict[str, str] = {}
            for t in node.transitions:
                if t.when is None:
                    continue
                name = t.to.replace("-", "_")
                if tool_names.setdefault(name, t.to) != t.to:
                    out.append(
                        f"node {node.id!r}: transitions: {tool_names[name]!r} and {t.to!r} "
                        "look the same to the LLM (- and _); rename one of them"
                    )
    if transfer_allowlist is not None:
        actions = CallActions(CallInfo(call_id="check"), transfer_allowlist)
        for node in flow.nodes:
            if isinstance(node, TransferNode) and not actions.may_transfer_to(node.to):
                out.append(
                    f"node {node.id!r}: to: {node.to} is not in [agent] transfer_allowlist; "
                    "add it there to allow the transfer"
                )
    return out
