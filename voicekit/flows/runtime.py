"""A flow as a server runs it: one validated flow, one webhook client and one decision
cache shared by every call, and a fresh :class:`FlowEngine` per call."""

from __future__ import annotations

from voicekit.config.settings import VoiceKitSettings
from voicekit.flows.engine import DEFAULT_APOLOGY, DecisionCache, FlowEngine
from voicekit.flows.load import load_flow, parse_flow
from voicekit.flows.model import Flow
from voicekit.flows.webhooks import WebhookRunner
from voicekit.telephony import CallInfo

__all__ = ["FlowRuntime", "flow_from_settings"]


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
