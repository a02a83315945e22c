"""Plugin discovery, loading and the provider registry."""

from voicekit.plugins.manager import ENTRY_POINT_GROUP, PluginManager, load_plugins
from voicekit.plugins.registry import PluginInfo, ProviderRegistry, Registration

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginManager",
    "ProviderRegistry",
    "Registration",
    "load_plugins",
]
