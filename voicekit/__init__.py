"""voicekit: low-latency phone voice agents with pluggable providers.

The public API is what ``__all__`` lists; everything else may change between releases.

Each name is imported from its module the first time it is used (PEP 562), so a script
that needs one part (``from voicekit.audio import ULAW_8K``) loads that part, not every
layer (config, flows, server, session): it starts in about a tenth of a second instead
of about a third of one.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voicekit._version import __version__
    from voicekit.audio import (
        ALAW_8K,
        PCM_8K,
        PCM_16K,
        PCM_24K,
        ULAW_8K,
        AudioConverter,
        AudioFormat,
        Framer,
        Resampler,
        alaw_decode,
        alaw_encode,
        ulaw_decode,
        ulaw_encode,
    )
    from voicekit.config import VoiceKitSettings, load_settings
    from voicekit.config.resolve import create_provider
    from voicekit.errors import (
        AudioFormatError,
        CallRefused,
        ConfigError,
        PluginError,
        ProviderAuthError,
        ProviderError,
        ProviderNotFoundError,
        ProviderTimeoutError,
        ProviderUnavailable,
        RateLimited,
        VoiceKitError,
    )
    from voicekit.flows import Flow, FlowError, FlowRuntime, load_flow
    from voicekit.hookspecs import hookimpl
    from voicekit.llm import LLM, Message, TextDelta, Tool, ToolCall, Usage
    from voicekit.plugins import PluginManager, ProviderRegistry, load_plugins
    from voicekit.provider import Provider, ProviderSettings, credential
    from voicekit.records import CallRecord, TranscriptEntry, TurnMetrics
    from voicekit.server import create_app
    from voicekit.session import CallSession
    from voicekit.session.responder import Responder, Speech
    from voicekit.session.speculation import SpeculativeResponder
    from voicekit.stt import STT, EndOfTurn, SpeechStarted, STTStream, Transcript, TurnLikelyOver
    from voicekit.telephony import (
        CallInfo,
        Dtmf,
        InboundAudio,
        MarkReached,
        MediaStream,
        StreamStopped,
        Telephony,
    )
    from voicekit.text import SentenceSegmenter
    from voicekit.tools import FunctionTool, ToolContext, tool
    from voicekit.tts import TTS, Alignment, AudioChunk, TTSSession, Utterance

# Public name: the module that defines it.
_EXPORTS: dict[str, str] = {
    "__version__": "voicekit._version",
    "ALAW_8K": "voicekit.audio",
    "AudioConverter": "voicekit.audio",
    "AudioFormat": "voicekit.audio",
    "Framer": "voicekit.audio",
    "PCM_16K": "voicekit.audio",
    "PCM_24K": "voicekit.audio",
    "PCM_8K": "voicekit.audio",
    "Resampler": "voicekit.audio",
    "ULAW_8K": "voicekit.audio",
    "alaw_decode": "voicekit.audio",
    "alaw_encode": "voicekit.audio",
    "ulaw_decode": "voicekit.audio",
    "ulaw_encode": "voicekit.audio",
    "VoiceKitSettings": "voicekit.config",
    "load_settings": "voicekit.config",
    "create_provider": "voicekit.config.resolve",
    "AudioFormatError": "voicekit.errors",
    "CallRefused": "voicekit.errors",
    "ConfigError": "voicekit.errors",
    "PluginError": "voicekit.errors",
    "ProviderAuthError": "voicekit.errors",
    "ProviderError": "voicekit.errors",
    "ProviderNotFoundError": "voicekit.errors",
    "ProviderTimeoutError": "voicekit.errors",
    "ProviderUnavailable": "voicekit.errors",
    "RateLimited": "voicekit.errors",
    "VoiceKitError": "voicekit.errors",
    "Flow": "voicekit.flows",
    "FlowError": "voicekit.flows",
    "FlowRuntime": "voicekit.flows",
    "load_flow": "voicekit.flows",
    "hookimpl": "voicekit.hookspecs",
    "LLM": "voicekit.llm",
    "Message": "voicekit.llm",
    "TextDelta": "voicekit.llm",
    "Tool": "voicekit.llm",
    "ToolCall": "voicekit.llm",
    "Usage": "voicekit.llm",
    "PluginManager": "voicekit.plugins",
    "ProviderRegistry": "voicekit.plugins",
    "load_plugins": "voicekit.plugins",
    "Provider": "voicekit.provider",
    "ProviderSettings": "voicekit.provider",
    "credential": "voicekit.provider",
    "CallRecord": "voicekit.records",
    "TranscriptEntry": "voicekit.records",
    "TurnMetrics": "voicekit.records",
    "create_app": "voicekit.server",
    "CallSession": "voicekit.session",
    "Responder": "voicekit.session.responder",
    "Speech": "voicekit.session.responder",
    "SpeculativeResponder": "voicekit.session.speculation",
    "EndOfTurn": "voicekit.stt",
    "STT": "voicekit.stt",
    "STTStream": "voicekit.stt",
    "SpeechStarted": "voicekit.stt",
    "Transcript": "voicekit.stt",
    "TurnLikelyOver": "voicekit.stt",
    "CallInfo": "voicekit.telephony",
    "Dtmf": "voicekit.telephony",
    "InboundAudio": "voicekit.telephony",
    "MarkReached": "voicekit.telephony",
    "MediaStream": "voicekit.telephony",
    "StreamStopped": "voicekit.telephony",
    "Telephony": "voicekit.telephony",
    "SentenceSegmenter": "voicekit.text",
    "FunctionTool": "voicekit.tools",
    "ToolContext": "voicekit.tools",
    "tool": "voicekit.tools",
    "Alignment": "voicekit.tts",
    "AudioChunk": "voicekit.tts",
    "TTS": "voicekit.tts",
    "TTSSession": "voicekit.tts",
    "Utterance": "voicekit.tts",
}

__all__ = [
    "ALAW_8K",
    "LLM",
    "PCM_8K",
    "PCM_16K",
    "PCM_24K",
    "STT",
    "TTS",
    "ULAW_8K",
    "Alignment",
    "AudioChunk",
    "AudioConverter",
    "AudioFormat",
    "AudioFormatError",
    "CallInfo",
    "CallRecord",
    "CallRefused",
    "CallSession",
    "ConfigError",
    "Dtmf",
    "EndOfTurn",
    "Flow",
    "FlowError",
    "FlowRuntime",
    "Framer",
    "FunctionTool",
    "InboundAudio",
    "MarkReached",
    "MediaStream",
    "Message",
    "PluginError",
    "PluginManager",
    "Provider",
    "ProviderAuthError",
    "ProviderError",
    "ProviderNotFoundError",
    "ProviderRegistry",
    "ProviderSettings",
    "ProviderTimeoutError",
    "ProviderUnavailable",
    "RateLimited",
    "Resampler",
    "Responder",
    "STTStream",
    "SentenceSegmenter",
    "SpeculativeResponder",
    "Speech",
    "SpeechStarted",
    "StreamStopped",
    "TTSSession",
    "Telephony",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolContext",
    "Transcript",
    "TranscriptEntry",
    "TurnLikelyOver",
    "TurnMetrics",
    "Usage",
    "Utterance",
    "VoiceKitError",
    "VoiceKitSettings",
    "__version__",
    "alaw_decode",
    "alaw_encode",
    "create_app",
    "create_provider",
    "credential",
    "hookimpl",
    "load_flow",
    "load_plugins",
    "load_settings",
    "tool",
    "ulaw_decode",
    "ulaw_encode",
]


# One lazy import at a time: voicekit's modules import each other, and two threads
# importing two of them for the first time at once could each wait for the other.
_importing = threading.RLock()


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    with _importing:
        if module is not None:
            value = getattr(importlib.import_module(module), name)
        elif importlib.util.find_spec(f"voicekit.{name}") is not None:
            value = importlib.import_module(f"voicekit.{name}")  # voicekit.errors and such
        else:
            raise AttributeError(f"module 'voicekit' has no attribute {name!r}")
        globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    """The public names, and the module's own dunders (no import helpers)."""
    return sorted({n for n in globals() if n.startswith("__")} | set(__all__))
