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
    """Token counts reported by the provider at the end of a stream. ``cached_input_tokens``
    are the part of ``input_tokens`` served from the provider's prompt cache."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None


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
        the underlying request promptly. A ``ToolCall`` event is a complete call (its
        arguments assembled); the caller runs it and asks again with the result.
        """

    def for_call(self, call_id: str) -> LLM[SettingsT]:
        """This provider as one call uses it (a provider may tag requests with the call,
        e.g. to keep a prompt cache warm across its turns). The default is ``self``."""
        return self

    async def prewarm(self) -> None:
        """Open the connection to the provider before it is needed (called as a call
        starts, so the first turn pays no TCP/TLS handshake). The default does nothing;
        failures are logged by the caller, never raised into the call."""
