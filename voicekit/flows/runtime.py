"""A flow as a server runs it: one validated flow, one webhook client and one decision
cache shared by every call, and a fresh :class:`FlowEngine` per call."""

from __future__ import annotations

from voicekit.config.settings import VoiceKitSettings
from voicekit.flows.engine import DEFAULT_APOLOGY, DecisionCache, FlowEngine
from voicekit.flows.load import load_flow, parse_flow
from voicekit.flows.model import ConversationNode, Flow
from voicekit.flows.webhooks import WebhookRunner
from voicekit.telephony import CallInfo

__all__ = ["FlowRuntime", "answering_problems", "flow_from_settings"]


def flow_from_settings(settings: VoiceKitSettings) -> Flow | None:
    """The flow ``[flow]`` names (``file`` or ``inline``), validated against ``[agent]``'s
    transfer allow-list; None when there is none."""
    allowlist = settings.agent.transfer_allowlist
    if settings.flow.file is not None:
        return load_flow(settings.flow.file, transfer_allowlist=allowlist)
    if settings.flow.inline is not None:
        return parse_flow(
            settings.flow.inline, source="[flow] inline", transfer_allowlist=allowlist
        )
    return None


def answering_problems(flow: Flow | None, *, has_llm: bool) -> list[str]:
    """With no LLM, what would leave a caller unanswered: no flow at all, or prompt
    nodes (which only an LLM can follow)."""
    if has_llm:
        return []
    if flow is None:
        return [
            '[llm] provider is "none" and there is no [flow]: nothing would answer the '
            "caller; set [llm] provider and its key, or [flow] file"
        ]
    return [
        f'node {node.id!r}: prompt: [llm] provider is "none", and only an LLM can follow a '
        "prompt; give the node a script, or set [llm] provider"
        for node in flow.nodes
        if isinstance(node, ConversationNode) and node.prompt is not None
    ]


class FlowRuntime:
    """The session's responder factory for a flow: ``CallSession(..., responder=runtime)``."""

    def __init__(
        self,
        flow: Flow,
        *,
        webhooks: WebhookRunner | None = None,
        apology: str = DEFAULT_APOLOGY,
    ) -> None:
        self.flow = flow
        self.webhooks = webhooks or WebhookRunner()
        self.decisions = DecisionCache()
        self._apology = apology

    def __call__(self, call: CallInfo) -> FlowEngine:
        return FlowEngine(
            self.flow, call, webhooks=self.webhooks, decisions=self.decisions, apology=self._apology
        )

    async def aclose(self) -> None:
        await self.webhooks.aclose()
