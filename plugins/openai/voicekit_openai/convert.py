"""voicekit's messages and tools in Chat Completions form, and streamed tool-call deltas
assembled into whole calls. Pure functions: no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from voicekit.llm import Message, Tool, ToolCall

__all__ = ["ToolCallAssembler", "chat_messages", "chat_tools"]


def chat_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            out.append(
                {
                    "role": "assistant",
                    "content": m.content or None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments},
                        }
                        for c in m.tool_calls
                    ],
                }
            )
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def chat_tools(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": dict(t.parameters),
            },
        }
        for t in tools
    ]


@dataclass
class _Partial:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallAssembler:
    """Tool-call deltas (by ``index``, in any order, arguments in fragments) into calls."""

    def __init__(self) -> None:
        self._calls: dict[int, _Partial] = {}

    def add(self, index: int, id: str | None, name: str | None, arguments: str | None) -> None:
        partial = self._calls.setdefault(index, _Partial())
        if id:
            partial.id = id
        if name:
            partial.name += name if not partial.name else ""
        if arguments:
            partial.arguments.append(arguments)

    def calls(self) -> list[ToolCall]:
        """The whole calls, in index order (ids made up where a server sent none)."""
        return [
            ToolCall(p.id or f"call_{index}", p.name, "".join(p.arguments) or "{}")
            for index, p in sorted(self._calls.items())
        ]
