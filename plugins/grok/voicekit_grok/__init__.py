"""voicekit plugin `grok`: xAI Grok streaming LLM through its OpenAI-compatible API.

The provider is the ``openai`` plugin's, with xAI's key, address and model, and the
``x-grok-conv-id`` header on every request of a call, so each turn of a conversation hits
the prompt cache its earlier turns filled. Loaded through the entry point `grok`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from voicekit_openai.llm import OpenAILLM

from voicekit.hookspecs import hookimpl
from voicekit.llm import LLM
from voicekit.provider import ProviderSettings
from voicekit_grok.settings import GrokSettings

__all__ = ["GrokLLM", "GrokSettings"]


class GrokLLM(OpenAILLM):
    name: ClassVar[str] = "grok"
    Settings: ClassVar[type[ProviderSettings]] = GrokSettings
    label: ClassVar[str] = "xAI"
    key_env: ClassVar[str] = "XAI_API_KEY"

    def extra_headers(self) -> dict[str, str]:
        return {"x-grok-conv-id": self._conversation} if self._conversation else {}


@hookimpl
def register_llm(register: Callable[[type[LLM[Any]]], None]) -> None:
    register(GrokLLM)
