"""Lifecycle hooks called one plugin at a time, so one observer's bug stays its own.

pluggy calls a hook's implementations in one loop: the first that raises stops the rest,
and the exception reaches the caller. For registration hooks that is right (a broken
plugin should be reported), but ``call_started``, ``turn_completed`` and ``call_ended``
are observers running inside a live call: a CRM exporter that raises must not keep the
analytics plugin from seeing the turn, nor disturb the call. :class:`Observers` calls
each implementation on its own, in pluggy's order (last registered first), and logs a
failure with the plugin's name and the call id.
"""

from __future__ import annotations

import logging
from typing import Any

import pluggy

__all__ = ["OBSERVER_HOOKS", "Observers"]

logger = logging.getLogger(__name__)

OBSERVER_HOOKS = ("call_started", "turn_completed", "call_ended")


class Observers:
    """Notifies every plugin's lifecycle hook in isolation.

    ``plugins`` is a voicekit :class:`~voicekit.plugins.PluginManager` or a pluggy
    manager with voicekit's hookspecs.
    """

    def __init__(self, plugins: Any) -> None:
        pm = getattr(plugins, "pm", plugins)
        if not isinstance(pm, pluggy.PluginManager):
            raise TypeError(f"Observers needs a plugin manager, got {type(plugins).__name__}")
        self._pm = pm

    def notify(self, hook: str, call_id: str, **kwargs: Any) -> None:
        """Call ``hook(**kwargs)`` on every plugin implementing it; never raises."""
        caller = getattr(self._pm.hook, hook)
        for impl in reversed(caller.get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                logger.warning(
                    "plugin %s: %s is a hook wrapper; lifecycle hooks are plain observers "
                    "and wrappers are not called",
                    impl.plugin_name,
                    hook,
                )
                continue
            try:
                impl.function(*[kwargs[name] for name in impl.argnames])
            except Exception:
                logger.exception(
                    "call=%s: plugin %s raised in its %s hook; the call and the other "
                    "plugins carry on",
                    call_id,
                    impl.plugin_name,
                    hook,
                )
