"""voicekit plugin `anthropic`: Anthropic Messages streaming LLM.

Loaded through the entry point `anthropic` of group `voicekit`, exactly like a third-party
plugin. The ``anthropic`` SDK is imported lazily inside the provider, so this module
always imports and `voicekit plugins` can say when the `anthropic` extra is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from voicekit.hookspecs import hookimpl
from voicekit.llm import LLM
from voicekit_anthropic.llm import AnthropicLLM
from voicekit_anthropic.settings import AnthropicSettings

__all__ = ["AnthropicLLM", "AnthropicSettings"]


@hookimpl
def register_llm(register: Callable[[type[LLM[Any]]], None]) -> None:
    register(AnthropicLLM)
