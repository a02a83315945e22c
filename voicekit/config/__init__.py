"""Settings: ``voicekit.toml``, ``VOICEKIT_*`` environment variables and arguments."""

from voicekit.config.loader import CONFIG_ENV, load_settings, read_config_file
from voicekit.config.resolve import ResolvedProviders, masked_settings, resolve_providers
from voicekit.config.sections import (
    AgentSettings,
    FlowSettings,
    ProviderChoice,
    ServerSettings,
    TurnSettings,
)
from voicekit.config.settings import VoiceKitSettings

__all__ = [
    "CONFIG_ENV",
    "AgentSettings",
    "FlowSettings",
    "ProviderChoice",
    "ResolvedProviders",
    "ServerSettings",
    "TurnSettings",
    "VoiceKitSettings",
    "load_settings",
    "masked_settings",
    "read_config_file",
    "resolve_providers",
]
