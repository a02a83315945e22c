"""What a flow asks the LLM: the instructions of each kind of request, rendered.

Three kinds: a prompt node's answer (with the node's tools), the small routing decision
(tools only, no words for the caller) and the answer to a caller who went off a script.
Each is built from the flow, the node and the call's values, and nothing else, so the
routing decision's cache key can hold the whole request as rendered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from voicekit.flows.decisions import DecisionKey, flow_tools
from voicekit.flows.model import BUILTIN_VARIABLES, ConversationNode, ExtractField, Flow, Transition
from voicekit.flows.templates import render_text
from voicekit.flows.values import normalize_utterance
from voicekit.llm import Tool

__all__ = ["decision_request", "known_values", "off_script_instructions", "step_instructions"]


def known_values(variables: Mapping[str, Any]) -> str:
    """The values saved so far, for the model (the built-in ones, but today, it knows)."""
    builtin = set(BUILTIN_VARIABLES) - {"today"}
    known = [f"{k} = {v}" for k, v in variables.items() if k not in builtin]
    return "Known so far: " + "; ".join(known) + "." if known else ""


def step_instructions(
    flow: Flow, node: ConversationNode, tools: Sequence[Tool], variables: Mapping[str, Any]
) -> str:
    """A prompt node's answer: the flow's instructions, this step, what is known, and how
    to use the node's tools."""
    lines = [render_text(flow.instructions, variables)] if flow.instructions else []
    lines.append(
        f"This step of the call: {render_text(node.prompt or node.script or '', variables)}"
    )
    lines.append(known_values(variables))
    if tools:
        lines.append(
            "Use the tools silently and never mention them: save_variables as soon as "
            "the caller gives a value; a go_to_ tool when its condition holds (you may "
            "say a short sentence first). Keep answers short: this is a phone call."
        )
    return "\n".join(line for line in lines if line)


def decision_request(
    flow: Flow,
    node: ConversationNode,
    text: str,
    unfilled: Sequence[ExtractField],
    worded: Sequence[Transition],
    variables: Mapping[str, Any],
) -> tuple[str, list[Tool], dict[str, str], DecisionKey]:
    """The routing decision's instructions, tools, tool targets and cache key."""
    tools, targets = flow_tools(unfilled, worded)
    said = render_text(node.script or node.prompt or "", variables)
    instructions = "\n".join(
        line
        for line in (
            "You route a phone call and never speak: answer only with tool calls.",
            render_text(flow.instructions, variables),
            f'The agent just said: "{said}"',
            "Call save_variables with any value the caller gave, and the one go_to_ "
            "tool whose condition holds; call no go_to_ tool when none holds.",
        )
        if line
    )
    # The key holds the whole request as rendered (script, instructions, variables): a
    # decision is reused only for exactly the question it answered, and one caller's
    # words or values can never route another caller.
    key = (node.id, normalize_utterance(text), (instructions, *(t.name for t in tools)))
    return instructions, tools, targets, key


def off_script_instructions(
    flow: Flow, node: ConversationNode, variables: Mapping[str, Any]
) -> str:
    """The caller said something the script's question did not expect: answer briefly,
    then ask it again."""
    lines = [render_text(flow.instructions, variables)] if flow.instructions else []
    lines.append(
        f'You just said: "{render_text(node.script or "", variables)}". The caller said '
        "something else. Answer briefly, then ask that question again."
    )
    lines.append(known_values(variables))
    return "\n".join(line for line in lines if line)
