"""The :class:`~voicekit.session.responder.Speech` a responder gets for one reply."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import anyio

from voicekit.llm import LLM, Message, Tool, ToolCall, Usage
from voicekit.session.actions import PendingAction
from voicekit.session.reply import LLMRequest, Reply, ReplyPipeline
from voicekit.session.reply_audio import ReplyAudio
from voicekit.session.reply_state import RequestMeter

__all__ = ["DECISION_MAX_TOKENS", "ReplySpeech", "llm_decision"]

logger = logging.getLogger(__name__)

DECISION_MAX_TOKENS = 120  # a decision is tool calls, not prose


async def llm_decision(
    llm: LLM,
    *,
    instructions: str,
    text: str,
    tools: Sequence[Tool],
    timeout_s: float,
    on_usage: Callable[[Usage], None] | None = None,
    label: str = "",
    meter: RequestMeter | None = None,
) -> list[ToolCall]:
    """The tool calls a short request about ``text`` makes; none when it fails or takes
    longer than ``timeout_s`` (no decision is a decision: the caller's fallback applies).
    ``meter`` counts what was sent and received, for a request cut off unreported."""
    calls: list[ToolCall] = []
    messages = [Message("system", instructions), Message("user", text)]
    if meter is not None:
        meter.sent = len(instructions) + len(text)
    with anyio.move_on_after(timeout_s) as scope:
        try:
            events: AsyncIterator[Any] = llm.stream(
                messages, tools=list(tools), max_tokens=DECISION_MAX_TOKENS, temperature=0.0
            )
            async with contextlib.aclosing(events) as stream:  # type: ignore[type-var]
                async for event in stream:
                    if isinstance(event, ToolCall):
                        calls.append(event)
                        if meter is not None:
                            meter.received += len(event.name) + len(event.arguments)
                    elif isinstance(event, Usage):
                        if meter is not None:
                            meter.reported = True
                        if on_usage is not None:
                            on_usage(event)
        except Exception as exc:
            logger.warning("%s: decision request failed: %s", label, exc)
            return []
        finally:
            if meter is not None:
                meter.close()
    if scope.cancelled_caught:
        logger.warning("%s: no decision after %.1f s", label, timeout_s)
        return []
    return calls


class ReplySpeech:
    def __init__(self, pipeline: ReplyPipeline, reply: Reply, audio: ReplyAudio) -> None:
        self._pipeline = pipeline
        self._reply = reply
        self._audio = audio

    @property
    def can_answer(self) -> bool:
        return self._pipeline.llm is not None

    async def say(self, text: str, *, cache: bool = False) -> None:
        if text.strip():
            await self._pipeline.say(self._reply, self._audio, text, cache=cache)

    async def answer(
        self,
        *,
        instructions: str = "",
        tools: Sequence[Tool] = (),
        on_call: Callable[[ToolCall], bool] | None = None,
        hold: Callable[[], Awaitable[None]] | None = None,
    ) -> str:
        before = len(self._reply.pieces)
        await self._pipeline.answer(
            self._reply, self._audio, LLMRequest(instructions, tuple(tools), on_call, hold)
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
        if self._pipeline.llm is None:
            return []
        return await llm_decision(
            self._pipeline.llm,
            instructions=instructions,
            text=text,
            tools=tools,
            timeout_s=timeout_s,
            on_usage=self._reply.add_usage,
            label=f"call={self._pipeline.call_id} reply {self._reply.id}",
            meter=RequestMeter(self._reply, 0),
        )

    async def confirmed(self) -> None:
        await self._reply.confirmed.wait()

    def end_call(self) -> None:
        self._reply.after = PendingAction("end")

    def transfer(self, destination: str) -> None:
        self._reply.after = PendingAction("transfer", destination)
