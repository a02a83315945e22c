"""voicekit: low-latency phone voice agents with pluggable providers.

The public API is what ``__all__`` lists; everything else may change between releases.
"""

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
