"""Tool calls as an LLM streams them: assembled from fragments, within bounds.

A model's server sends a tool call in pieces (an id and a name, then the arguments in
fragments, several calls interleaved by index). Nothing in the protocol bounds how many
calls or how long their arguments are, so a broken or hostile server could make a
process hold gigabytes: :class:`ToolCallAssembler` refuses more than
``MAX_TOOL_CALLS`` calls in one response or more than ``MAX_ARGUMENT_CHARS`` of
arguments in one call, raising :class:`ToolCallLimit` (a provider reports it as a
:class:`~voicekit.errors.ProviderError`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from voicekit.llm import ToolCall

__all__ = [
    "MAX_ARGUMENT_CHARS",
    "MAX_TOOL_CALLS",
    "ToolCallAssembler",
    "ToolCallLimit",
    "parse_tool_arguments",
]

MAX_TOOL_CALLS = 16  # in one response
MAX_ARGUMENT_CHARS = 64 * 1024  # of one call's JSON arguments


class ToolCallLimit(ValueError):
    """A response had too many tool calls, or one call's arguments were too long."""


@dataclass
class _Partial:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    size: int = 0


class ToolCallAssembler:
    """Tool-call fragments (by index, in any order, arguments in pieces) into calls."""

    def __init__(self) -> None:
        self._calls: dict[int, _Partial] = {}

    def add(self, index: int, id: str | None, name: str | None, arguments: str | None) -> None:
        partial = self._calls.get(index)
        if partial is None:
            if len(self._calls) >= MAX_TOOL_CALLS:
                raise ToolCallLimit(f"more than {MAX_TOOL_CALLS} tool calls in one response")
            partial = self._calls[index] = _Partial()
        if id:
            partial.id = id[:256]
        if name and not partial.name:
            partial.name = name[:256]
        if arguments:
            partial.size += len(arguments)
            if partial.size > MAX_ARGUMENT_CHARS:
                raise ToolCallLimit(
                    f"a tool call's arguments passed {MAX_ARGUMENT_CHARS} characters"
                )
            partial.arguments.append(arguments)

    def calls(self) -> list[ToolCall]:
        """The whole calls, in index order (ids made up where a server sent none)."""
        return [
            ToolCall(p.id or f"call_{n}", p.name, "".join(p.arguments) or "{}")
            for n, (_, p) in enumerate(sorted(self._calls.items()))
        ]


def parse_tool_arguments(text: str) -> dict[str, Any]:
    """A call's JSON arguments as a dict: ``{}`` for anything that is not a JSON object
    (malformed, nested past the parser's depth, a list), so one bad call cannot make
    every later request of the conversation fail."""
    try:
        value = json.loads(text or "{}")
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}
