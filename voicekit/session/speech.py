"""The :class:`~voicekit.session.responder.Speech` a responder gets for one reply."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio

from voicekit.llm import Message, Tool, ToolCall, Usage
from voicekit.session.actions import PendingAction
from voicekit.session.reply import LLMRequest, Reply, ReplyPipeline
from voicekit.tts import Utterance

__all__ = ["DECISION_MAX_TOKENS", "ReplySpeech"]

logger = logging.getLogger(__name__)

DECISION_MAX_TOKENS = 120  # a decision is tool calls, not prose


class ReplySpeech:
    def __init__(self, pipeline: ReplyPipeline, reply: Reply, utterance: Utterance) -> None:
        self._pipeline = pipeline
        self._reply = reply
        self._utterance = utterance

    @property
    def can_answer(self) -> bool:
        return True

    async def say(self, text: str) -> None:
        if text.strip():
            await self._pipeline.say(self._reply, self._utterance, text)

    async def answer(
        self,
        *,
        instructions: str = "",
        tools: Sequence[Tool] = (),
        on_call: Callable[[ToolCall], bool] | None = None,
    ) -> str:
        before = len(self._reply.pieces)
        await self._pipeline.answer(
            self._reply, self._utterance, LLMRequest(instructions, tuple(tools), on_call)
        )
        return " ".join(self._reply.pieces[before:])

    async def decide(
        self,
        *,
        instructions: str,
        text: str,
        tools: Sequence[Tool],
        timeout_s: float,
    ) -> list[ToolCall]:
        calls: list[ToolCall] = []
        messages = [Message("system", instructions), Message("user", text)]
        llm = self._pipeline.llm
        with anyio.move_on_after(timeout_s) as scope:
            try:
                events: AsyncIterator[Any] = llm.stream(
                    messages, tools=list(tools), max_tokens=DECISION_MAX_TOKENS, temperature=0.0
                )
                async with contextlib.aclosing(events) as stream:  # type: ignore[type-var]
                    async for event in stream:
                        if isinstance(event, ToolCall):
                            calls.append(event)
                        elif isinstance(event, Usage):
                            self._reply.add_usage(event)
            except Exception as exc:  # no decision is a decision: the fallback applies
                logger.warning(
                    "call=%s reply %d: decision request failed: %s",
                    self._pipeline.call_id,
                    self._reply.id,
                    exc,
                )
                return []
        if scope.cancelled_caught:
            logger.warning(
                "call=%s reply %d: no decision after %.1f s",
                self._pipeline.call_id,
                self._reply.id,
                timeout_s,
            )
            return []
        return calls

    def end_call(self) -> None:
        self._reply.after = PendingAction("end")

    def transfer(self, destination: str) -> None:
        self._reply.after = PendingAction("transfer", destination)
