"""voicekit plugin `openai`: OpenAI Chat Completions streaming LLM (and any
OpenAI-compatible server through ``base_url``).

Loaded through the entry point `openai` of group `voicekit`, exactly like a third-party
plugin. The ``openai`` SDK is imported lazily inside the provider, so this module always
imports and `voicekit plugins` can say when the `openai` extra is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from voicekit.hookspecs import hookimpl
from voicekit.llm import LLM
from voicekit_openai.llm import OpenAILLM
from voicekit_openai.settings import OpenAISettings

__all__ = ["OpenAILLM", "OpenAISettings"]


@hookimpl
def register_llm(register: Callable[[type[LLM[Any]]], None]) -> None:
    register(OpenAILLM)
