"""A scripted :class:`~voicekit.session.responder.Speech` for flow-engine tests, and the
example flow, so every test reads the same front desk."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicekit.flows import Flow, FlowEngine, WebhookResult, load_flow, parse_flow
from voicekit.flows.model import FunctionNode
from voicekit.llm import Tool, ToolCall
from voicekit.telephony import CallInfo

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flows" / "dental_front_desk.toml"
DESK = "+15551230000"


def example_flow() -> Flow:
    return load_flow(EXAMPLE, transfer_allowlist=[DESK])


def booking_flow(last: dict[str, Any] | None = None) -> Flow:
    """Ask the caller's name (a prompt node), book through a webhook, then ``last`` (by
    default an ending node reading the reference)."""
    done = last or {"id": "done", "type": "ending", "script": "Booked, reference {{ref}}."}
    return parse_flow(
        {
            "start": "ask",
            "first_speaker": "caller",
            "nodes": [
                {
                    "id": "ask",
                    "prompt": "Ask for the caller's name.",
                    "extract": [{"name": "name", "mandatory": True, "reprompt": "Your name?"}],
                    "transitions": [{"to": "book", "when": "the name is known"}],
                },
                {
                    "id": "book",
                    "type": "function",
                    "url": "https://crm.example.com/bookings",
                    "body": {"name": "{{name}}"},
                    "save": {"ref": "id"},
                    "next": done["id"],
                },
                done,
            ],
        }
    )


def call_of(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(f"call-{name}", name, json.dumps(arguments))


@dataclass
class ScriptedSpeech:
    """Says what it is told; ``answers`` and ``decisions`` are what the LLM would do:
    each answer is (text, tool calls), each decision a list of tool calls."""

    answers: list[tuple[str, list[ToolCall]]] = field(default_factory=list)
    decisions: list[list[ToolCall]] = field(default_factory=list)
    llm: bool = True
    said: list[str] = field(default_factory=list)
    cacheable: list[bool] = field(default_factory=list)  # per said text: may be cached
    asked: list[tuple[str, list[str]]] = field(default_factory=list)  # instructions, tools
    discarded: list[str] = field(default_factory=list)  # held answers cancelled unheard
    decided: list[tuple[str, list[str]]] = field(default_factory=list)  # text, tools
    unclaimed: list[ToolCall] = field(default_factory=list)
    after: tuple[str, str | None] | None = None

    @property
    def can_answer(self) -> bool:
        return self.llm

    async def say(self, text: str, *, cache: bool = False) -> None:
        if text.strip():
            self.said.append(text)
            self.cacheable.append(cache)

    async def answer(
        self,
        *,
        instructions: str = "",
        tools: Sequence[Tool] = (),
        on_call: Callable[[ToolCall], bool] | None = None,
        hold: Callable[[], Awaitable[None]] | None = None,
    ) -> str:
        self.asked.append((instructions, [t.name for t in tools]))
        text, calls = self.answers.pop(0) if self.answers else ("", [])
        if hold is not None:
            released = False
            try:
                await hold()
                released = True
            finally:
                if not released:  # cancelled while held: never spoken
                    self.discarded.append(instructions)
        if text:
            self.said.append(text)
        for call in calls:
            if on_call is None or not on_call(call):
                self.unclaimed.append(call)
        return text

    async def decide(
        self, *, instructions: str, text: str, tools: Sequence[Tool], timeout_s: float
    ) -> list[ToolCall]:
        self.decided.append((text, [t.name for t in tools]))
        return self.decisions.pop(0) if self.decisions else []

    async def confirmed(self) -> None:
        """Every turn here is typed, so it is known to be over."""

    def end_call(self) -> None:
        self.after = ("end", None)

    def transfer(self, destination: str) -> None:
        self.after = ("transfer", destination)


@dataclass
class FakeWebhooks:
    """Answers function nodes without a network: ``results`` by node id."""

    results: dict[str, WebhookResult]
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def run(
        self, node: FunctionNode, variables: Any, *, allow_private: bool, call_id: str
    ) -> WebhookResult:
        self.calls.append((node.id, dict(variables)))
        return self.results[node.id]

    async def aclose(self) -> None:
        pass


def engine(flow: Flow | None = None, webhooks: Any = None, **kwargs: Any) -> FlowEngine:
    return FlowEngine(
        flow or example_flow(),
        CallInfo(call_id="c1", from_number="+15550001111", to_number="+15550002222"),
        webhooks=webhooks,
        **kwargs,
    )
