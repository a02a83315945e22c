"""The default agent: a front desk flow of scripts and keywords, run when nothing else
says what the agent is.

With neither ``[flow]`` nor ``[agent] instructions`` set, voicekit runs
``front_desk.toml`` (shipped beside this module, and as ``examples/flows/front_desk.toml``
for users to copy), so a fresh install answers calls with no LLM and no key. Its transfer
goes to a fictional number, which is added to the transfer allow-list only while this
flow runs.
"""

from __future__ import annotations

from pathlib import Path

from voicekit.config.settings import VoiceKitSettings

__all__ = ["BUILTIN_DESK", "BUILTIN_FLOW", "uses_builtin_flow", "with_builtin_flow"]

BUILTIN_FLOW = Path(__file__).with_name("front_desk.toml")
BUILTIN_DESK = "+15555550100"


def uses_builtin_flow(settings: VoiceKitSettings) -> bool:
    """Whether nothing configures the agent: no flow, no instructions of the user's."""
    flow = settings.flow
    return (
        flow.file is None
        and flow.inline is None
        and "instructions" not in settings.agent.model_fields_set
    )


def with_builtin_flow(settings: VoiceKitSettings) -> VoiceKitSettings:
    """``settings`` with the built-in flow filled in where it applies (else unchanged)."""
    if not uses_builtin_flow(settings):
        return settings
    agent = settings.agent
    allowlist = [*agent.transfer_allowlist, BUILTIN_DESK]
    return settings.model_copy(
        update={
            "flow": settings.flow.model_copy(update={"file": BUILTIN_FLOW}),
            "agent": agent.model_copy(update={"transfer_allowlist": allowlist}),
        }
    )
