"""Which of a flow's texts are known before the call, and so can be phrase-cached.

A text is known when every variable it names is one of the flow's own ``variables`` that
no node overwrites (by extraction or a webhook's ``save``). Text holding what a caller
said, a webhook returned, or the call's own details (its numbers, its id) is spoken live
every time: caching it would keep callers' details in memory and on disk, and grow
without bound.
"""

from __future__ import annotations

from collections.abc import Iterator

from voicekit.config.settings import VoiceKitSettings
from voicekit.flows.model import (
    BUILTIN_VARIABLES,
    ConversationNode,
    EndingNode,
    Flow,
    FunctionNode,
    TransferNode,
)
from voicekit.flows.templates import names_in, render_text

__all__ = ["call_phrases", "constant_names", "flow_phrases", "is_known_text"]


def constant_names(flow: Flow) -> frozenset[str]:
    """The flow's variables that hold the same value on every call."""
    written: set[str] = set()
    for node in flow.nodes:
        if isinstance(node, ConversationNode):
            written.update(f.name for f in node.extract)
        elif isinstance(node, FunctionNode):
            written.update(node.save)
    return frozenset(flow.variables) - written - set(BUILTIN_VARIABLES)


def is_known_text(template: str, constants: frozenset[str]) -> bool:
    return all(name in constants for name in names_in(template))


def _templates(flow: Flow) -> Iterator[str]:
    for node in flow.nodes:
        if isinstance(node, ConversationNode):
            if node.script is not None:
                yield node.script
            yield from (f.reprompt for f in node.extract if f.reprompt)
        elif isinstance(node, TransferNode | EndingNode) and node.script:
            yield node.script
    if flow.apology:
        yield flow.apology


def flow_phrases(flow: Flow) -> list[str]:
    """Every known text the flow can say, rendered, once each, in flow order."""
    constants = constant_names(flow)
    seen: dict[str, None] = {}
    for template in _templates(flow):
        if is_known_text(template, constants):
            text = render_text(template, flow.variables).strip()
            if text:
                seen.setdefault(text, None)
    return list(seen)


def call_phrases(settings: VoiceKitSettings, flow: Flow | None) -> list[str]:
    """Every known text a call under ``settings`` (and ``flow``) can say: the flow's,
    then the configured greeting, apology, filler, idle prompts, farewell and voicemail
    message, once each."""
    agent, turn = settings.agent, settings.turn
    texts = flow_phrases(flow) if flow is not None else []
    if flow is None and agent.first_speaker == "agent" and agent.greeting:
        texts.append(agent.greeting)
    if flow is None or not flow.apology:
        texts.append(agent.apology)
    texts += [agent.filler, *turn.idle_prompts, agent.farewell]
    if turn.voicemail_action == "leave_message" and turn.voicemail_message:
        texts.append(turn.voicemail_message)
    seen: dict[str, None] = {}
    for text in texts:
        if text and text.strip():
            seen.setdefault(text.strip(), None)
    return list(seen)
