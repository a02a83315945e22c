"""The call-flow engine: a responder that walks a flow's nodes, one call at a time.

Every decision is taken by the cheapest thing that can take it, in this order:

1. ``pattern`` extraction and ``keywords``/``regex`` transitions: the caller's words
   matched in microseconds, no LLM.
2. A prompt node answers and decides in **one** streamed LLM request: its unfilled
   variables (``save_variables``) and its worded transitions (``go_to_<node>``) are
   offered as tools, so the answer starts playing while the decision is made.
3. A script node with worded transitions (or variables with no pattern) asks a small
   decision request (tools only, a short timeout), cached per node and utterance.
4. A missing mandatory variable is asked for again with the node's ``reprompt`` text.

Scripts, reprompts and farewells never call an LLM. The engine never touches audio: it
speaks through the :class:`~voicekit.session.responder.Speech` of the reply it runs in.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import anyio

from voicekit.flows.decisions import (
    SAVE_TOOL,
    Decision,
    DecisionCache,
    DecisionKey,
    flow_tools,
    keyword_hit,
)
from voicekit.flows.model import (
    ConversationNode,
    EndingNode,
    ExtractField,
    Flow,
    FunctionNode,
    TransferNode,
    Transition,
)
from voicekit.flows.phrases import constant_names, is_known_text
from voicekit.flows.prompts import (
    decision_request,
    off_script_instructions,
    step_instructions,
)
from voicekit.flows.templates import render_text
from voicekit.flows.values import coerce
from voicekit.flows.webhooks import WebhookRunner
from voicekit.llm import ToolCall
from voicekit.session.responder import Speech, Turn
from voicekit.telephony import CallInfo

__all__ = ["SAVE_TOOL", "DecisionCache", "FlowEngine", "FlowStep"]

logger = logging.getLogger(__name__)

Reason = Literal["start", "keyword", "regex", "llm", "always", "next", "error"]
MAX_HOPS = 16  # nodes entered in one reply (function chains); validation forbids loops
DEFAULT_APOLOGY = "I'm sorry, something went wrong on our side."


@dataclass(slots=True)
class _InFlight:
    """Webhooks under way, counted across an engine and its speculative copies."""

    count: int = 0


@dataclass(frozen=True, slots=True)
class FlowStep:
    """One move from node to node, and what decided it."""

    turn: int
    source: str | None
    target: str
    reason: Reason
    detail: str = ""


class FlowEngine:
    """The :class:`~voicekit.session.responder.Responder` of one call on a flow."""

    def __init__(
        self,
        flow: Flow,
        call: CallInfo,
        *,
        webhooks: WebhookRunner | None = None,
        decisions: DecisionCache | None = None,
        apology: str = DEFAULT_APOLOGY,
    ) -> None:
        self.flow = flow
        self.call = call
        self._webhooks = webhooks
        self._decisions = decisions if decisions is not None else DecisionCache()
        self._apology = flow.apology or apology
        self.variables: dict[str, Any] = {
            **flow.variables,
            "caller_number": call.from_number,
            "called_number": call.to_number,
            "call_id": call.call_id,
            "today": dt.date.today().isoformat(),
        }
        self._constants = constant_names(flow)
        self.node_id = flow.start
        self.turns = 0
        self.path: list[FlowStep] = [FlowStep(0, None, flow.start, "start")]
        self._listening = flow.start  # the conversation node the caller answers
        self._in_flight = _InFlight()
        self._guess = False  # this copy runs a speculative reply (its moves may be dropped)

    # -- the responder interface ---------------------------------------------------------------

    def opening(self) -> Turn | None:
        if self.flow.first_speaker == "caller":
            return None
        return functools.partial(self._enter, self.flow.start)

    def reply_to(self, text: str) -> Turn:
        self._guess = False  # a copy that was promoted is the flow now
        return functools.partial(self._turn, text)

    def speculate(self, text: str) -> tuple[Turn, FlowEngine] | None:
        """The reply to ``text`` on a copy of this engine (see
        :class:`~voicekit.session.speculation.SpeculativeResponder`). None when a keyword
        or pattern decides the turn: no LLM is waited for, so there is nothing to gain;
        and while a webhook is under way: its result is saved on this engine, which a
        promoted copy would replace."""
        if self._in_flight.count:
            return None
        node = self.flow.node(self._listening)
        assert isinstance(node, ConversationNode)
        if self._match(node, text) is not None:
            return None
        fork = copy.copy(self)
        fork.variables = dict(self.variables)
        fork.path = list(self.path)
        fork._guess = True
        return functools.partial(fork._turn, text), fork

    def state(self) -> Mapping[str, Any]:
        return {
            "node": self.node_id,
            "variables": dict(self.variables),
            "path": [asdict(step) for step in self.path],
        }

    def turn_state(self) -> Mapping[str, Any]:
        return {
            "node": self.node_id,
            "variables": dict(self.variables),
            "path": [asdict(step) for step in self.path if step.turn == self.turns],
        }

    async def aclose(self) -> None:
        """Nothing of the call's own to release: the webhook client is the server's."""

    # -- a caller turn ---------------------------------------------------------------------------

    async def _turn(self, text: str, speech: Speech) -> None:
        self.turns += 1
        node = self.flow.node(self._listening)
        assert isinstance(node, ConversationNode)
        self._extract_by_pattern(node, text)
        matched = self._match(node, text)
        if matched is not None:
            transition, reason, detail = matched
            await self._go(transition.to, reason, detail, speech)
            return
        unfilled = [f for f in node.extract if f.name not in self.variables]
        worded = [t for t in node.transitions if t.when]
        spoke, chosen = "", None
        if node.prompt is not None and speech.can_answer:
            spoke, chosen = await self._answer_and_decide(node, unfilled, worded, speech)
        elif speech.can_answer and (worded or any(f.pattern is None for f in unfilled)):
            if self._answer_alongside(node, text, unfilled, worded):
                spoke, chosen = await self._decide_answering(node, text, unfilled, worded, speech)
            else:
                chosen = await self._decide(node, text, unfilled, worded, speech)
        missing = self._missing(node)
        if missing is not None:
            if not spoke:
                await self._say(missing.reprompt or "", speech)
            return
        if chosen is not None:
            condition = " or ".join(t.when or "" for t in worded if t.to == chosen)
            await self._go(chosen, "llm", condition, speech)
            return
        fallback = next((t for t in node.transitions if t.always), None)
        if fallback is not None:
            await self._go(fallback.to, "always", "", speech)
            return
        if spoke:
            return
        if speech.can_answer:
            await speech.answer(
                instructions=off_script_instructions(self.flow, node, self.variables)
            )
        else:
            await self._enter(node.id, speech)  # no LLM to answer with: ask again

    def _missing(self, node: ConversationNode) -> ExtractField | None:
        """The node's first mandatory variable still unfilled."""
        return next((f for f in node.extract if f.mandatory and f.name not in self.variables), None)

    def _extract_by_pattern(self, node: ConversationNode, text: str) -> None:
        for field in node.extract:
            if field.pattern is None or field.name in self.variables:
                continue
            match = re.search(field.pattern, text, re.IGNORECASE)
            if match is not None:
                self._set(field, match[1] if match.re.groups else match[0], "pattern")

    def _match(self, node: ConversationNode, text: str) -> tuple[Transition, Reason, str] | None:
        for transition in node.transitions:
            keyword = keyword_hit(transition, text)
            if keyword is not None:
                return transition, "keyword", keyword
            if transition.regex is not None and re.search(transition.regex, text, re.IGNORECASE):
                return transition, "regex", transition.regex
        return None

    def _set(self, field: ExtractField, value: Any, source: str) -> bool:
        typed = coerce(field, value)
        if typed is None:
            logger.info(
                "call=%s: flow: %s from the %s is not a %s; not saved",
                self.call.call_id,
                field.name,
                source,
                field.type,
            )
            return False
        self.variables[field.name] = typed
        return True

    # -- the LLM, when words must be understood -----------------------------------------

    def _claim(
        self,
        call: ToolCall,
        unfilled: Sequence[ExtractField],
        targets: Mapping[str, str],
        chosen: list[str],
    ) -> bool:
        """Apply a call of the flow's own tools; False for any other tool."""
        if call.name in targets:
            chosen.append(targets[call.name])
            return True
        if call.name != SAVE_TOOL:
            return False
        try:
            arguments = json.loads(call.arguments or "{}")
        except (ValueError, RecursionError):
            arguments = None
        if not isinstance(arguments, dict):
            logger.info("call=%s: flow: save_variables without an object", self.call.call_id)
            return True
        for field in unfilled:
            if field.name in arguments:
                self._set(field, arguments[field.name], "model")
        return True

    async def _answer_and_decide(
        self,
        node: ConversationNode,
        unfilled: Sequence[ExtractField],
        worded: Sequence[Transition],
        speech: Speech,
    ) -> tuple[str, str | None]:
        tools, targets = flow_tools(unfilled, worded)
        chosen: list[str] = []
        spoke = await speech.answer(
            instructions=step_instructions(self.flow, node, tools, self.variables),
            tools=tools,
            on_call=lambda call: self._claim(call, unfilled, targets, chosen),
        )
        return spoke, chosen[0] if chosen else None

    def _cached_decision(
        self, key: DecisionKey, unfilled: Sequence[ExtractField]
    ) -> Decision | None:
        """A routing decision already made for exactly this question (never with values)."""
        return None if unfilled else self._decisions.get(key)

    async def _decide(
        self,
        node: ConversationNode,
        text: str,
        unfilled: Sequence[ExtractField],
        worded: Sequence[Transition],
        speech: Speech,
    ) -> str | None:
        instructions, tools, targets, key = decision_request(
            self.flow, node, text, unfilled, worded, self.variables
        )
        cached = self._cached_decision(key, unfilled)
        if cached is not None:
            return cached[0]
        chosen: list[str] = []
        calls = await speech.decide(
            instructions=instructions,
            text=text,
            tools=tools,
            timeout_s=self.flow.decision_timeout_s,
        )
        for call in calls:
            self._claim(call, unfilled, targets, chosen)
        target = chosen[0] if chosen else None
        if calls and not unfilled:  # a routing answer (not a timeout, not values): kept
            self._decisions.put(key, (target,))
        return target

    def _answer_alongside(
        self,
        node: ConversationNode,
        text: str,
        unfilled: Sequence[ExtractField],
        worded: Sequence[Transition],
    ) -> bool:
        """Whether to write the off-script answer while the decision is made: only when
        the decision will really be asked (not cached) and, if it picks nothing, that
        answer is what the caller hears (no ``always`` fallback, no reprompt due)."""
        if not self.flow.answer_while_deciding or self._missing(node) is not None:
            return False
        if any(t.always for t in node.transitions):
            return False
        key = decision_request(self.flow, node, text, unfilled, worded, self.variables)[3]
        return bool(unfilled) or key not in self._decisions

    async def _decide_answering(
        self,
        node: ConversationNode,
        text: str,
        unfilled: Sequence[ExtractField],
        worded: Sequence[Transition],
        speech: Speech,
    ) -> tuple[str, str | None]:
        """The decision, with the off-script answer written alongside it but held: it is
        spoken only when no transition is chosen (the caller hears it one decision
        sooner), and otherwise cancelled unheard, its tools never run."""
        release = anyio.Event()
        spoke = ""
        failed_unheard = False
        before = dict(self.variables)

        async def answer() -> None:
            nonlocal spoke, failed_unheard
            try:
                spoke = await speech.answer(
                    instructions=off_script_instructions(self.flow, node, self.variables),
                    hold=release.wait,
                )
            except Exception as exc:
                if release.is_set():
                    raise
                failed_unheard = True  # asked again below if it turns out to be wanted
                logger.info("call=%s: flow: early answer failed: %s", self.call.call_id, exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(answer)
            chosen = await self._decide(node, text, unfilled, worded, speech)
            wanted = chosen is None and self._missing(node) is None
            # Written before the decision saved values, the early answer may contradict
            # them: it is used only when the decision changed nothing it knew.
            stale = self.variables != before
            if wanted and not stale:
                release.set()
            else:
                tg.cancel_scope.cancel()
        if wanted and (failed_unheard or stale):
            spoke = await speech.answer(
                instructions=off_script_instructions(self.flow, node, self.variables)
            )
        return spoke, chosen

    def _off_script(self, node: ConversationNode) -> str:
        return off_script_instructions(self.flow, node, self.variables)

    # -- moving between nodes ------------------------------------------------------------------

    async def _go(self, target: str, reason: Reason, detail: str, speech: Speech) -> None:
        self.path.append(FlowStep(self.turns, self.node_id, target, reason, detail))
        logger.info(
            "call=%s: flow %s -> %s (%s)%s",
            self.call.call_id,
            self.node_id,
            target,
            reason,
            " in a speculative reply" if self._guess else "",
        )
        self.node_id = target
        await self._enter(target, speech)

    async def _enter(self, node_id: str, speech: Speech) -> None:
        """Do what arriving at ``node_id`` means: speak, call a webhook, transfer, end."""
        for _ in range(MAX_HOPS):
            self.node_id = node_id
            node = self.flow.node(node_id)
            if isinstance(node, ConversationNode):
                self._listening = node.id
                if node.script is not None:
                    await self._say(node.script, speech)
                elif speech.can_answer:
                    await speech.answer(
                        instructions=step_instructions(self.flow, node, (), self.variables)
                    )
                else:  # no LLM to follow the prompt: ask for what the node needs
                    missing = [f for f in node.extract if f.name not in self.variables]
                    await self._say((missing[0].reprompt or "") if missing else "", speech)
                return
            if isinstance(node, TransferNode):
                await self._say(node.script or "", speech)
                speech.transfer(node.to)
                return
            if isinstance(node, EndingNode):
                await self._say(node.script or "", speech)
                speech.end_call()
                return
            assert isinstance(node, FunctionNode)
            next_id = await self._run_function(node, speech)
            if next_id is None:
                return
            node_id = next_id
        logger.error("call=%s: flow: more than %d nodes in one reply", self.call.call_id, MAX_HOPS)

    async def _run_function(self, node: FunctionNode, speech: Speech) -> str | None:
        """Call the node's webhook; the node to go to next (None: stay where the caller
        was, after the apology)."""
        if self._webhooks is None:
            raise RuntimeError("this flow has function nodes but the engine has no webhooks")
        await speech.confirmed()  # a webhook has side effects: never on a guess
        # Shielded: a barge-in must not leave a request half-done and the flow unsure
        # whether it happened; the timeout bounds the wait.
        self._in_flight.count += 1
        try:
            with anyio.CancelScope(shield=True):
                result = await self._webhooks.run(
                    node,
                    self.variables,
                    allow_private=self.flow.allow_private_networks,
                    call_id=self.call.call_id,
                )
        finally:
            self._in_flight.count -= 1
        if result.ok:
            self.variables.update(result.saved)
            self.path.append(FlowStep(self.turns, node.id, node.next, "next"))
            return node.next
        if node.on_error is not None:
            self.path.append(
                FlowStep(self.turns, node.id, node.on_error, "error", result.error or "")
            )
            return node.on_error
        await self._say(self._apology, speech)
        self.path.append(
            FlowStep(self.turns, node.id, self._listening, "error", result.error or "")
        )
        self.node_id = self._listening
        return None

    def _render(self, text: str) -> str:
        return render_text(text, self.variables)

    async def _say(self, template: str, speech: Speech) -> None:
        """Speak ``template`` rendered; from the phrase cache when it was known before
        the call (see :mod:`voicekit.flows.phrases`)."""
        known = is_known_text(template, self._constants)
        await speech.say(self._render(template), cache=known)
