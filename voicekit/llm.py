"""Large-language-model interface: a streamed chat completion.

``LLM.stream`` yields text as the model writes it, so the session can start speaking
the first clause while the rest is still being generated.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from voicekit.provider import Provider, ProviderKind, SettingsT

__all__ = ["LLM", "LLMEvent", "Message", "TextDelta", "Tool", "ToolCall", "Usage"]

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks to call a tool; ``arguments`` is the JSON text the model wrote."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message in provider-neutral form."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply text, in order."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts reported by the provider at the end of a stream."""

    input_tokens: int | None = None
    output_tokens: int | None = None


LLMEvent = TextDelta | ToolCall | Usage


class LLM(Provider[SettingsT], ABC):
    """A streaming chat model."""

    kind: ClassVar[ProviderKind] = "llm"

    @abstractmethod
    def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Tool] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> AsyncIterator[LLMEvent]:
        """Stream a reply to ``messages``.

        Implementations are async generators: closing the iterator (barge-in) must cancel
        the underlying request promptly.
        """
