"""A scripted streaming LLM with controllable latency and failures.

A scripted reply may call tools: ``"Let me check. [[opening_hours {"day": "monday"}]]"``
streams "Let me check." and then a ``ToolCall`` of ``opening_hours`` with those
arguments (several markers: several calls). The next request, carrying the results, gets
the next scripted reply.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import ClassVar

import anyio
from pydantic import Field

from voicekit.errors import ProviderError
from voicekit.llm import LLM, LLMEvent, Message, TextDelta, Tool, ToolCall, Usage
from voicekit.provider import ProviderSettings

__all__ = ["FakeLLM", "FakeLLMSettings", "tokenize", "tool_calls_in"]

_TOKEN = re.compile(r"\s*[\w'$%@/:-]+|\s*[^\w\s]+|\s+")
_TOOL_MARKER = re.compile(r"\[\[(\w[\w-]*)\s*(\{.*?\})?\]\]", re.S)


def tool_calls_in(reply: str, request_index: int) -> tuple[str, list[ToolCall]]:
    """A scripted reply's text and the tool calls its ``[[name {json}]]`` markers make."""
    calls = [
        ToolCall(f"fake-call-{request_index}-{n}", m[1], m[2] or "{}")
        for n, m in enumerate(_TOOL_MARKER.finditer(reply))
    ]
    return _TOOL_MARKER.sub("", reply).strip(), calls


def tokenize(text: str) -> list[str]:
    """Split text into LLM-like tokens: words with their leading space, punctuation apart."""
    return _TOKEN.findall(text)


class FakeLLMSettings(ProviderSettings):
    replies: list[str] = Field(default_factory=list, description="Replies, in order.")
    default_reply: str = Field(default="I see. Tell me more.", description="After the script.")
    echo: bool = Field(default=False, description="Reply 'You said: <last user message>'.")
    first_token_ms: float = Field(default=250.0, ge=0)
    tokens_per_second: float = Field(default=40.0, gt=0)
    fail_on_reply: int | None = Field(
        default=None, description="Index of the reply that fails (0-based), if any."
    )
    fail_after_tokens: int = Field(default=0, ge=0, description="Tokens sent before failing.")
    fail_retryable: bool = Field(default=False, description="Whether the failure is retryable.")


class FakeLLM(LLM[FakeLLMSettings]):
    """Streams scripted replies, token by token, at a set first-token delay and rate.

    ``requests`` keeps every message list it was asked with, so tests can check the
    history the session sent (truncated after barge-in, windowed, with instructions).
    """

    name: ClassVar[str] = "fake"
    Settings: ClassVar[type[ProviderSettings]] = FakeLLMSettings

    def __init__(self, settings: FakeLLMSettings | None = None) -> None:
        super().__init__(settings)
        self.requests: list[list[Message]] = []
        self.tools_offered: list[list[str]] = []  # the tool names of each request
        self.cancelled = 0
        self.completed = 0

    @classmethod
    def scripted(cls, replies: Sequence[str], **options: object) -> FakeLLM:
        return cls(FakeLLMSettings.model_validate({"replies": list(replies), **options}))

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Tool] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> AsyncIterator[LLMEvent]:
        s = self.settings
        index = len(self.requests)
        self.requests.append(list(messages))
        self.tools_offered.append([t.name for t in tools or ()])
        reply = s.replies[index] if index < len(s.replies) else s.default_reply
        if s.echo:
            last = next((m.content for m in reversed(messages) if m.role == "user"), "")
            reply = f"You said: {last}."
        reply, calls = tool_calls_in(reply, index)
        tokens = tokenize(reply)
        if max_tokens is not None:
            tokens = tokens[:max_tokens]
        gap = 1.0 / s.tokens_per_second
        finished = False
        try:
            first = anyio.current_time() + s.first_token_ms / 1000
            for n, token in enumerate(tokens):
                if s.fail_on_reply == index and n >= s.fail_after_tokens:
                    raise ProviderError(
                        "scripted failure", provider="fake", retryable=s.fail_retryable
                    )
                # Each token is due at a fixed time, so timer lateness does not accumulate.
                await anyio.sleep(max(0.0, first + n * gap - anyio.current_time()))
                yield TextDelta(token)
            if s.fail_on_reply == index and s.fail_after_tokens >= len(tokens):
                raise ProviderError("scripted failure", provider="fake", retryable=s.fail_retryable)
            # A tool call is written token by token too: it arrives when its name and
            # arguments would have finished streaming (a tool-only reply is not free).
            written = len(tokens)
            for call in calls:
                written += len(tokenize(f"{call.name} {call.arguments}"))
                await anyio.sleep(max(0.0, first + (written - 1) * gap - anyio.current_time()))
                yield call
            finished = True
            yield Usage(
                input_tokens=sum(len(m.content.split()) for m in messages),
                output_tokens=len(tokens),
            )
        finally:
            if finished:
                self.completed += 1
            else:
                self.cancelled += 1
