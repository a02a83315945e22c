"""The conversation as the LLM sees it: instructions, knowledge, and a window of turns.

The assistant's messages hold what the caller actually heard: after a barge-in the
message is cut to the words that played, so the model never believes it said more.
"""

from __future__ import annotations

from voicekit.llm import Message

__all__ = ["ConversationHistory"]


class ConversationHistory:
    def __init__(self, instructions: str, *, knowledge: str | None = None, window: int = 20):
        system = instructions.strip()
        if knowledge and knowledge.strip():
            system += "\n\nReference information:\n" + knowledge.strip()
        self.system = system
        self.window = window
        self._messages: list[Message] = []

    def add_user(self, text: str) -> None:
        """Add what the caller said; consecutive caller turns merge into one message."""
        if self._messages and self._messages[-1].role == "user":
            merged = f"{self._messages[-1].content} {text}".strip()
            self._messages[-1] = Message("user", merged)
        else:
            self._messages.append(Message("user", text))

    def add_assistant(self, text: str) -> int:
        """Add an agent message; returns its index for later truncation."""
        self._messages.append(Message("assistant", text))
        return len(self._messages) - 1

    def set_assistant(self, index: int, text: str) -> None:
        """Replace an agent message (barge-in truncation); an empty one is removed."""
        if not 0 <= index < len(self._messages) or self._messages[index].role != "assistant":
            return
        if text.strip():
            self._messages[index] = Message("assistant", text.strip())
        else:
            del self._messages[index]

    def messages(self) -> list[Message]:
        """System message, then the last ``window`` turns (a turn starts at a user message)."""
        starts = [i for i, m in enumerate(self._messages) if m.role == "user"]
        first = starts[-self.window] if len(starts) > self.window else 0
        return [Message("system", self.system), *self._messages[first:]]

    @property
    def turns(self) -> list[Message]:
        """Every message so far, without the system message and without windowing."""
        return list(self._messages)
