"""The conversation as the LLM sees it: instructions, knowledge, and a window of turns.

The assistant's messages hold what the caller actually heard: after a barge-in the
message is cut to the words that played, so the model never believes it said more. Tool
calls the model made stay in the history with their results, as the model needs them:
an assistant message carrying the calls, then one tool message per call. A tool still
running when the caller barged in finishes (its side effect happened), and its result
joins the history when it arrives; :meth:`ConversationHistory.settled` waits for that
before the next request, so the model always knows what was done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from voicekit.config.sections import AgentSettings
from voicekit.llm import Message, ToolCall

__all__ = ["ConversationHistory", "ToolStep"]

PENDING = "(the tool has not finished)"


@dataclass(eq=False)
class ToolStep:
    """Tool calls the model made in one reply, and their results as they arrive."""

    calls: tuple[ToolCall, ...]
    pieces_before: int  # how many of the reply's text pieces came before the calls
    results: dict[str, str] = field(default_factory=dict)
    done: anyio.Event = field(default_factory=anyio.Event)

    def set_result(self, call_id: str, text: str) -> None:
        self.results[call_id] = text
        if all(c.id in self.results for c in self.calls):
            self.done.set()

    def messages(self, content: str) -> list[Message]:
        return [
            Message("assistant", content, tool_calls=self.calls),
            *(
                Message("tool", self.results.get(c.id, PENDING), tool_call_id=c.id)
                for c in self.calls
            ),
        ]


@dataclass(eq=False)
class _StepEntry:
    content: str
    step: ToolStep


class ConversationHistory:
    def __init__(self, instructions: str, *, knowledge: str | None = None, window: int = 20):
        system = instructions.strip()
        if knowledge and knowledge.strip():
            system += "\n\nReference information:\n" + knowledge.strip()
        self.system = system
        self.window = window
        self._messages: list[Message | _StepEntry] = []
        self.revision = 0  # changes with every change of the messages

    def _changed(self) -> None:
        self.revision += 1

    @classmethod
    def for_agent(cls, agent: AgentSettings) -> ConversationHistory:
        """The history of a call with ``[agent]`` instructions, knowledge and window."""
        parts = [agent.knowledge or ""]
        if agent.knowledge_file is not None:
            parts.append(Path(agent.knowledge_file).read_text(encoding="utf-8"))
        knowledge = "\n\n".join(p for p in parts if p.strip())
        return cls(agent.instructions, knowledge=knowledge or None, window=agent.history_turns)

    def add_user(self, text: str) -> None:
        """Add what the caller said; consecutive caller turns merge into one message."""
        _add_user(self._messages, text)
        self._changed()

    def add_assistant(self, text: str) -> int:
        """Add an agent message; returns its index for later truncation."""
        self._messages.append(Message("assistant", text))
        self._changed()
        return len(self._messages) - 1

    def add_reply(self, segments: Sequence[tuple[str, ToolStep | None]], heard: str) -> None:
        """A reply as the caller heard it: ``heard`` (a prefix of its words) cut at the
        reply's ``segments`` (text, then the tool step that followed it)."""
        rest = heard.split()
        for text, step in segments:
            words, n = text.split(), 0
            while n < len(words) and n < len(rest) and words[n] == rest[n]:
                n += 1
            part, rest = " ".join(rest[:n]), rest[n:]
            if step is not None:
                self.add_tool_step(part, step)
            elif part:
                self.add_assistant(part)

    def add_tool_step(self, content: str, step: ToolStep) -> None:
        """The model's text before some tool calls (as heard), the calls, their results."""
        self._messages.append(_StepEntry(content, step))
        self._changed()

    def set_assistant(self, index: int, text: str) -> None:
        """Replace an agent message (barge-in truncation); an empty one is removed."""
        if not 0 <= index < len(self._messages):
            return
        entry = self._messages[index]
        if not isinstance(entry, Message) or entry.role != "assistant":
            return
        if text.strip():
            self._messages[index] = Message("assistant", text.strip())
        else:
            del self._messages[index]
        self._changed()

    async def settled(self, limit_s: float) -> None:
        """Wait (at most ``limit_s``) until every tool in the history has a result."""
        with anyio.move_on_after(limit_s):
            for entry in list(self._messages):
                if isinstance(entry, _StepEntry):
                    await entry.step.done.wait()

    def messages(self, user: str | None = None) -> list[Message]:
        """System message, then the last ``window`` turns (a turn starts at a user message).

        With ``user``: the messages as they will be once the caller's words ``user`` are
        added (what a speculative reply asks with, before the turn is confirmed)."""
        flat = self._flat()
        if user is not None:
            _add_user(flat, user)
        starts = [i for i, m in enumerate(flat) if m.role == "user"]
        first = starts[-self.window] if len(starts) > self.window else 0
        return [Message("system", self.system), *flat[first:]]

    @property
    def turns(self) -> list[Message]:
        """Every message so far, without the system message and without windowing."""
        return self._flat()

    def _flat(self) -> list[Message]:  # a new list: callers may extend it
        flat: list[Message] = []
        for entry in self._messages:
            if isinstance(entry, _StepEntry):
                flat += entry.step.messages(entry.content)
            else:
                flat.append(entry)
        return flat


def _add_user(messages: list[Any], text: str) -> None:
    """Append the caller's ``text`` to ``messages`` (history entries or plain messages)."""
    last = messages[-1] if messages else None
    if isinstance(last, Message) and last.role == "user":
        messages[-1] = Message("user", f"{last.content} {text}".strip())
    else:
        messages.append(Message("user", text))
