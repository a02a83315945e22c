"""``voicekit simulate --emulate``: the configured cloud providers, pointed at emulators.

Each configured provider that has an emulator in :mod:`voicekit.testing.emulators`
(Soniox, ElevenLabs, OpenAI and Grok, Anthropic) gets one on loopback and a test key,
so a production config runs end to end with no key and no network. The Soniox emulator
recognises the caller's scripted lines (it hears energy, not words); the LLM emulators
answer with a fixed reply. Providers with no emulator (local, fake) run as configured.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from voicekit.config.settings import NO_LLM, VoiceKitSettings
from voicekit.plugins.registry import ProviderRegistry
from voicekit.provider import ProviderKind

__all__ = ["EMULATED", "emulated_providers"]

EMULATED = ("soniox", "elevenlabs", "elevenlabs-rest", "openai", "grok", "anthropic")
LLM_REPLY = "This is the emulated model: your configuration works end to end."


async def _emulator(name: str, lines: list[str], stack: AsyncExitStack) -> dict[str, Any]:
    """Start the emulator for provider ``name``; the options that point the provider at it."""
    from voicekit.testing.emulators import (
        AnthropicEmulator,
        ElevenLabsEmulator,
        OpenAIEmulator,
        SonioxEmulator,
    )

    if name == "soniox":
        # Words final 120 ms into a pause, the endpoint at 500 ms, as the service does:
        # the plugin's likely-over signal (and so speculative replies) can be seen.
        emulator = SonioxEmulator(utterances=lines, endpoint_ms=500, final_after_ms=120)
        sx = await stack.enter_async_context(emulator)
        return {"url": sx.url, "api_key": sx.api_key}
    if name in ("elevenlabs", "elevenlabs-rest"):
        el = await stack.enter_async_context(ElevenLabsEmulator())
        return {"url": el.url, "rest_url": el.server.http_url, "api_key": el.api_key}
    if name in ("openai", "grok"):
        oa = await stack.enter_async_context(OpenAIEmulator(api_key=None, default_reply=LLM_REPLY))
        return {"base_url": oa.url, "api_key": "emulated-key"}
    an = await stack.enter_async_context(AnthropicEmulator(default_reply=LLM_REPLY))
    return {"base_url": an.url, "api_key": an.api_key}


async def emulated_providers(
    settings: VoiceKitSettings,
    registry: ProviderRegistry,
    lines: list[str],
    stack: AsyncExitStack,
) -> dict[ProviderKind, Any]:
    """Provider instances for the configured STT, LLM and TTS that have emulators."""
    made: dict[ProviderKind, Any] = {}
    kinds: tuple[ProviderKind, ...] = ("stt", "llm", "tts")
    for kind in kinds:
        name = getattr(settings, kind).provider
        if name not in EMULATED or (kind == "llm" and name == NO_LLM):
            continue
        options = registry.options(kind, name, settings.providers)
        options.update(await _emulator(name, lines, stack))
        fields = registry.get(kind, name).Settings.model_fields
        options = {k: v for k, v in options.items() if k in fields}
        made[kind] = registry.instantiate(
            kind, name, registry.settings(kind, name, options, source=f"[providers.{name}]")
        )
    return made
