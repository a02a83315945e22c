"""What the flow engine decides with: keyword matching, the tools it offers the LLM
(``save_variables`` and one ``go_to_<node>`` per worded transition), and the cache of
script nodes' routing decisions."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence

from voicekit.flows.model import ExtractField, Transition
from voicekit.flows.values import json_schema
from voicekit.llm import Tool

__all__ = [
    "GO_TOOL_PREFIX",
    "SAVE_TOOL",
    "Decision",
    "DecisionCache",
    "DecisionKey",
    "flow_tools",
    "keyword_hit",
]

SAVE_TOOL = "save_variables"
GO_TOOL_PREFIX = "go_to_"


Decision = tuple[str | None]  # the chosen node (None: none holds), boxed so a miss is None
DecisionKey = tuple[str, str, tuple[str, ...]]  # node, normalized words, rendered request


class DecisionCache:
    """Decisions of script nodes, by node, normalized utterance and unfilled variables;
    shared by every call of a flow (callers say "yes" a lot), least recently used out."""

    def __init__(self, size: int = 2048) -> None:
        self._size = size
        self._entries: OrderedDict[DecisionKey, Decision] = OrderedDict()
        self.hits = 0

    def get(self, key: DecisionKey) -> Decision | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return found

    def __contains__(self, key: DecisionKey) -> bool:
        return key in self._entries

    def put(self, key: DecisionKey, decision: Decision) -> None:
        self._entries[key] = decision
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


def keyword_hit(transition: Transition, text: str) -> str | None:
    """The transition's keyword that ``text`` says as whole words (any case), if any."""
    lowered = text.lower()
    for keyword in transition.keywords:
        if re.search(rf"(?<!\w){re.escape(keyword.lower())}(?!\w)", lowered):
            return keyword
    return None


def flow_tools(
    unfilled: Sequence[ExtractField], worded: Sequence[Transition]
) -> tuple[list[Tool], dict[str, str]]:
    """The flow's own tools for a node: ``save_variables`` for its unfilled variables,
    one ``go_to_<node>`` per target of its worded transitions; and each go-to tool's
    target node."""
    tools: list[Tool] = []
    if unfilled:
        tools.append(
            Tool(
                SAVE_TOOL,
                "Save what the caller told you. Call it as soon as the caller gives any "
                "of these values; include only the values they gave.",
                {
                    "type": "object",
                    "properties": {f.name: json_schema(f) for f in unfilled},
                    "additionalProperties": False,
                },
            )
        )
    targets: dict[str, str] = {}
    conditions: dict[str, list[str]] = {}
    for t in worded:
        conditions.setdefault(t.to, []).append(t.when or "")
    for target, whens in conditions.items():
        name = GO_TOOL_PREFIX + target.replace("-", "_")
        targets[name] = target
        tools.append(Tool(name, "Move the call on when " + " or when ".join(whens) + "."))
    return tools, targets
