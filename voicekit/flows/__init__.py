"""Call flows: node-based conversations with variables, transitions and webhooks.

``load_flow`` reads and validates a flow file; ``FlowEngine`` runs one call on it as the
session's responder; ``flow_responder`` builds engines for every call of a server.
"""

from voicekit.flows.engine import DecisionCache, FlowEngine, FlowStep
from voicekit.flows.load import FlowError, load_flow, parse_flow
from voicekit.flows.model import (
    ConversationNode,
    EndingNode,
    ExtractField,
    Flow,
    FunctionNode,
    TransferNode,
    Transition,
)
from voicekit.flows.runtime import FlowRuntime, flow_from_settings
from voicekit.flows.webhooks import WebhookResult, WebhookRunner

__all__ = [
    "ConversationNode",
    "DecisionCache",
    "EndingNode",
    "ExtractField",
    "Flow",
    "FlowEngine",
    "FlowError",
    "FlowRuntime",
    "FlowStep",
    "FunctionNode",
    "TransferNode",
    "Transition",
    "WebhookResult",
    "WebhookRunner",
    "flow_from_settings",
    "load_flow",
    "parse_flow",
]
