"""Every hook a voicekit plugin can implement, grouped by phase.

Hooks are synchronous and do no I/O: they run inside the call's event loop, so slow work
belongs in a provider object or a task the plugin starts itself. Mark implementations
with :data:`voicekit.hookimpl`; a function whose name matches no hook here is reported by
``check_pending`` when plugins load.

Registration phase (once, when plugins load)
    ``register_stt``, ``register_llm``, ``register_tts``, ``register_telephony``,
    ``register_tools``

Call lifecycle (observers: analytics, CRM export, custom logging)
    ``call_started``, ``turn_completed``, ``call_ended``
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from voicekit.llm import LLM
from voicekit.records import CallRecord, TurnMetrics
from voicekit.stt import STT
from voicekit.telephony import CallInfo, Telephony
from voicekit.tools import FunctionTool
from voicekit.tts import TTS

__all__ = [
    "PROJECT_NAME",
    "call_ended",
    "call_started",
    "hookimpl",
    "hookspec",
    "register_llm",
    "register_stt",
    "register_telephony",
    "register_tools",
    "register_tts",
    "turn_completed",
]

PROJECT_NAME = "voicekit"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# -- Registration phase -------------------------------------------------------------------


@hookspec
def register_stt(register: Callable[[type[STT[Any]]], None]) -> None:
    """Register speech-to-text provider classes: call ``register(MySTT)`` for each.

    The class needs a ``name`` (what ``[stt] provider = "..."`` selects) and a ``Settings``
    model. The core rejects a name another plugin already registered, naming both.
    """


@hookspec
def register_llm(register: Callable[[type[LLM[Any]]], None]) -> None:
    """Register LLM provider classes: call ``register(MyLLM)`` for each."""


@hookspec
def register_tts(register: Callable[[type[TTS[Any]]], None]) -> None:
    """Register text-to-speech provider classes: call ``register(MyTTS)`` for each."""


@hookspec
def register_telephony(register: Callable[[type[Telephony[Any]]], None]) -> None:
    """Register telephony provider classes: call ``register(MyTelephony)`` for each."""


@hookspec
def register_tools(register: Callable[[FunctionTool], None]) -> None:
    """Register tools the model may call in every call the server runs: call
    ``register(my_tool)`` for each (a :func:`voicekit.tool`-decorated function).

    A tool name another plugin (or a built-in tool) already has is rejected, naming both.
    """


# -- Call lifecycle -----------------------------------------------------------------------


@hookspec
def call_started(call: CallInfo) -> None:
    """A call was connected and its session is starting."""


@hookspec
def turn_completed(call: CallInfo, turn: TurnMetrics) -> None:
    """An agent turn finished (played out, interrupted or failed), with its timeline."""


@hookspec
def call_ended(call: CallInfo, record: CallRecord) -> None:
    """A call ended; ``record`` has the transcript, every turn and the end reason."""
