"""Loopback emulators of the providers' wire protocols (PROTOCOLS.md), for tests.

Each is an async context manager that serves on an ephemeral 127.0.0.1 port and records
what it received. They need the ``server`` extra (Starlette and uvicorn).
"""

from voicekit.testing.emulators._server import Faults, LoopbackServer
from voicekit.testing.emulators.anthropic import AnthropicEmulator
from voicekit.testing.emulators.elevenlabs import ElevenLabsEmulator
from voicekit.testing.emulators.llm_script import ScriptedReply, ScriptedToolCall
from voicekit.testing.emulators.openai import OpenAIEmulator
from voicekit.testing.emulators.soniox import SonioxEmulator
from voicekit.testing.emulators.telnyx import Command, TelnyxEmulator

__all__ = [
    "AnthropicEmulator",
    "Command",
    "ElevenLabsEmulator",
    "Faults",
    "LoopbackServer",
    "OpenAIEmulator",
    "ScriptedReply",
    "ScriptedToolCall",
    "SonioxEmulator",
    "TelnyxEmulator",
]
