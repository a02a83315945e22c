"""An example third-party voicekit plugin: the ``echo`` LLM.

It streams the caller's last message back, word by word, after an optional prefix. Useful
for checking a phone line end to end without an LLM account, and as the smallest
complete example of a provider plugin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, ClassVar

import anyio
from pydantic import Field

import voicekit
from voicekit import LLM, Message, ProviderSettings, TextDelta, Tool, Usage
from voicekit.llm import LLMEvent


class EchoSettings(ProviderSettings):
    """Options of the echo LLM (``[providers.echo]``)."""

    prefix: str = Field(default="You said: ", description="Spoken before the echoed words.")
    word_delay_ms: float = Field(
        default=0.0, ge=0, description="Pause between streamed words, to imitate a model."
    )
    silence_reply: str = Field(
        default="I did not hear anything.", description="Reply when there is nothing to echo."
    )


class EchoLLM(LLM):
    """Repeats the most recent user message."""

    name: ClassVar[str] = "echo"
    Settings: ClassVar[type[ProviderSettings]] = EchoSettings

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Tool] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> AsyncIterator[LLMEvent]:
        settings = self.settings
        assert isinstance(settings, EchoSettings)
        last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        text = f"{settings.prefix}{last_user}" if last_user.strip() else settings.silence_reply
        words = text.split(" ")
        if max_tokens is not None:
            words = words[:max_tokens]
        for i, word in enumerate(words):
            if settings.word_delay_ms:
                await anyio.sleep(settings.word_delay_ms / 1000)
            yield TextDelta(word if i == 0 else " " + word)
        yield Usage(input_tokens=len(last_user.split()), output_tokens=len(words))


@voicekit.hookimpl
def register_llm(register: Callable[[type[LLM[Any]]], None]) -> None:
    register(EchoLLM)
