"""A flow as a typed conversation (``voicekit flow chat``): the same engine a call runs,
with text in and text out instead of a phone line, to iterate on a flow in seconds.

Each agent reply is printed on one line prefixed ``agent: ``; after it, a line starting
``  [`` shows the node and the variables. Caller lines come from any iterable of strings
(stdin, a test's list).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

from voicekit.flows.engine import FlowEngine
from voicekit.flows.model import BUILTIN_VARIABLES, Flow
from voicekit.flows.webhooks import WebhookRunner
from voicekit.llm import LLM, Message, TextDelta, Tool, ToolCall
from voicekit.session.speech import llm_decision
from voicekit.telephony import CallInfo

__all__ = ["TextSpeech", "chat"]


class TextSpeech:
    """:class:`~voicekit.session.responder.Speech` over text: what is said is collected
    for the turn's line; the LLM (if any) answers from the conversation so far."""

    def __init__(self, llm: LLM | None, instructions: str, history: list[Message]) -> None:
        self._llm = llm
        self._instructions = instructions
        self._history = history
        self.said: list[str] = []
        self.after: str | None = None

    @property
    def can_answer(self) -> bool:
        return self._llm is not None

    async def say(self, text: str, *, cache: bool = False) -> None:
        if text.strip():
            self.said.append(text.strip())

    async def answer(
        self,
        *,
        instructions: str = "",
        tools: Sequence[Tool] = (),
        on_call: Callable[[ToolCall], bool] | None = None,
        hold: Callable[[], Awaitable[None]] | None = None,
    ) -> str:
        if self._llm is None:
            return ""
        system = f"{self._instructions}\n\n{instructions}".strip()
        messages = [Message("system", system), *self._history]
        if self.said:
            messages.append(Message("assistant", " ".join(self.said)))
        parts: list[str] = []
        events: AsyncIterator[Any] = self._llm.stream(messages, tools=list(tools) or None)
        async with contextlib.aclosing(events) as stream:  # type: ignore[type-var]
            async for event in stream:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                elif isinstance(event, ToolCall) and (on_call is None or not on_call(event)):
                    self.said.append(f"[{event.name} is not available in chat]")
        if hold is not None:
            await hold()
        text = "".join(parts).strip()
        if text:
            self.said.append(text)
        return text

    async def decide(
        self, *, instructions: str, text: str, tools: Sequence[Tool], timeout_s: float
    ) -> list[ToolCall]:
        if self._llm is None:
            return []
        return await llm_decision(
            self._llm,
            instructions=instructions,
            text=text,
            tools=tools,
            timeout_s=timeout_s,
            label="flow chat",
        )

    async def confirmed(self) -> None:
        """Every turn here is typed, so it is known to be over."""

    def end_call(self) -> None:
        self.after = "[the agent hangs up]"

    def transfer(self, destination: str) -> None:
        self.after = f"[the call is transferred to {destination}]"


def _state_line(engine: FlowEngine) -> str:
    shown = {
        k: v for k, v in engine.variables.items() if k not in BUILTIN_VARIABLES and v is not None
    }
    variables = " ".join(f"{k}={json.dumps(v)}" for k, v in shown.items())
    return f"  [node: {engine.node_id}" + (f" | {variables}" if variables else "") + "]"


async def chat(
    flow: Flow,
    lines: Iterable[str],
    write: Callable[[str], None],
    *,
    llm: LLM | None,
    instructions: str = "",
    webhooks: WebhookRunner | None = None,
    prompt: Callable[[], None] | None = None,
) -> FlowEngine:
    """Run ``flow`` against caller ``lines``; returns the engine (its state) at the end."""
    runner = webhooks or WebhookRunner()
    engine = FlowEngine(flow, CallInfo(call_id="chat", from_number="+15550100000"), webhooks=runner)
    history: list[Message] = []

    async def run_turn(turn: Any, user: str | None) -> bool:
        if user is not None:
            history.append(Message("user", user))
        speech = TextSpeech(llm, instructions, history)
        await turn(speech)
        reply = " ".join(speech.said)
        if reply:
            history.append(Message("assistant", reply))
            write(f"agent: {reply}")
        if speech.after:
            write(speech.after)
        write(_state_line(engine))
        return speech.after is None

    try:
        opening = engine.opening()
        if opening is not None and not await run_turn(opening, None):
            return engine
        if prompt is not None:
            prompt()
        for line in lines:
            text = line.strip()
            if text:
                if not await run_turn(engine.reply_to(text), text):
                    break
            if prompt is not None:
                prompt()
    finally:
        if webhooks is None:
            await runner.aclose()
    return engine
