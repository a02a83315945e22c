"""Plugin discovery and loading (pluggy, entry point group ``voicekit``).

First-party and third-party plugins load the same way: each is a module named by an
entry point. ``VOICEKIT_LOAD_PLUGINS`` (comma list) is an allowlist, where an empty value
loads none; ``VOICEKIT_BLOCK_PLUGINS`` skips the plugins it names. A plugin that fails to
import is reported and the others still load.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Callable, Mapping
from importlib import metadata
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pluggy

from voicekit import hookspecs
from voicekit.errors import PluginError
from voicekit.plugins.installed import InstalledPackages
from voicekit.plugins.registry import PluginInfo, ProviderRegistry
from voicekit.provider import PROVIDER_KINDS, Provider, ProviderKind
from voicekit.tools import BUILTIN_TOOL_NAMES, FunctionTool

__all__ = ["ENTRY_POINT_GROUP", "PluginManager", "load_plugins"]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "voicekit"
LOAD_ENV = "VOICEKIT_LOAD_PLUGINS"
BLOCK_ENV = "VOICEKIT_BLOCK_PLUGINS"


def _split(value: str) -> set[str]:
    return {part.strip() for part in value.split(",") if part.strip()}


def install_command(dist: metadata.Distribution, extra: str | None) -> str:
    """The pip command that installs ``dist`` with ``extra``: from PyPI, or, for a
    distribution installed from a checkout (``pip install -e``), from that checkout."""
    name = dist.metadata["Name"] or "voicekit"
    suffix = f"[{extra}]" if extra else ""
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        direct = {}
    url = str(direct.get("url", ""))
    if url.startswith("file://") and direct.get("dir_info", {}).get("editable"):
        path = url2pathname(urlsplit(url).path)
        return f'pip install -e "{path}{suffix}"'
    return f'pip install "{name}{suffix}"'


class PluginManager:
    """Loads plugins, keeps the pluggy manager, and fills a :class:`ProviderRegistry`."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.registry = ProviderRegistry()
        self.plugins: dict[str, PluginInfo] = {}
        self.tools: dict[str, FunctionTool] = {}  # from register_tools, by name

    @property
    def hook(self) -> Any:
        """The pluggy hook relay: ``manager.hook.call_started(call=...)``."""
        return self.pm.hook

    # -- loading ----------------------------------------------------------------------

    def load_entry_points(self, environ: Mapping[str, str] | None = None) -> None:
        """Discover and load every plugin of group ``voicekit``, honouring the env lists."""
        env = os.environ if environ is None else environ
        allow = _split(env[LOAD_ENV]) if LOAD_ENV in env else None
        block = _split(env.get(BLOCK_ENV, ""))
        seen: set[str] = set()
        installed = InstalledPackages()
        found = {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
        for unknown in sorted((allow or set()) - found):
            logger.warning(
                "%s names %r, but no installed plugin has that name (`voicekit plugins`)",
                LOAD_ENV,
                unknown,
            )
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in seen:
                continue  # the same distribution visible twice on sys.path
            seen.add(ep.name)
            if (allow is not None and ep.name not in allow) or ep.name in block:
                logger.debug("plugin %s skipped by %s/%s", ep.name, LOAD_ENV, BLOCK_ENV)
                continue
            info = PluginInfo(name=ep.name, module=ep.value)
            try:
                self._describe(info, ep.dist, installed)
            except Exception as exc:  # metadata we cannot read must not stop the others
                info.error = f"unreadable package metadata: {type(exc).__name__}: {exc}"
                logger.warning("plugin %s could not be loaded: %s", ep.name, info.error)
                self.plugins[ep.name] = info
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                info.error = f"import failed: {type(exc).__name__}: {exc}"
                logger.warning("plugin %s could not be loaded: %s", ep.name, info.error)
                self.plugins[ep.name] = info
                continue
            self._register(module, info)
        self.check_pending()
        self.collect_providers()
        self.collect_tools()

    @staticmethod
    def _describe(
        info: PluginInfo, dist: metadata.Distribution | None, installed: InstalledPackages
    ) -> None:
        """Fill in the plugin's distribution, version and missing requirements."""
        if dist is None:
            return
        facts = installed.facts(dist)
        info.distribution, info.version = facts.name, facts.version
        info.missing = installed.missing_requirements(dist, info.name)
        if info.missing:
            extra = info.name if facts.has_extra(info.name) else None
            info.install_hint = install_command(dist, extra)

    def register(self, plugin: ModuleType | object, name: str | None = None) -> PluginInfo:
        """Register a plugin object directly (an app's own hooks, or tests).

        Call :meth:`collect_providers` and :meth:`collect_tools` afterwards to pick up its
        providers and tools.
        """
        pname = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        info = PluginInfo(name=pname, module=getattr(plugin, "__name__", pname))
        self._register(plugin, info)
        return info

    def _register(self, plugin: ModuleType | object, info: PluginInfo) -> None:
        if info.name in self.plugins and self.plugins[info.name].ok:
            raise PluginError(f"a plugin named {info.name!r} is already loaded")
        try:
            self.pm.register(plugin, name=info.name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            info.error = f"invalid plugin: {exc}"
            logger.warning("plugin %s rejected: %s", info.name, exc)
        self.plugins[info.name] = info

    def check_pending(self) -> None:
        """Unload plugins that implement a hook voicekit does not define (usually a
        misspelt name, ``register_ttts``): each is listed with its error, as a plugin that
        fails to import is, and the others keep working."""
        known = [
            name for name in dir(hookspecs) if name.startswith(("register_", "call_", "turn_"))
        ]
        for hook_name, caller in list(vars(self.pm.hook).items()):
            if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.optionalhook:
                    continue
                info = self.plugins.get(impl.plugin_name) or PluginInfo(
                    name=impl.plugin_name, module=impl.plugin_name
                )
                close = difflib.get_close_matches(hook_name, known, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                info.error = (
                    f"implements {hook_name}, which is not a voicekit hook{hint}; fix the "
                    f"plugin, or skip it with {BLOCK_ENV}={info.name} "
                    "(docs/plugins.md lists the hooks)"
                )
                logger.warning("plugin %s unloaded: %s", info.name, info.error)
                self.plugins[info.name] = info
                if self.pm.get_plugin(impl.plugin_name) is not None:
                    self.pm.unregister(name=impl.plugin_name)

    def collect_providers(self) -> None:
        """Call every plugin's ``register_*`` hooks, recording which plugin gave what.

        Each plugin's registration runs on its own, so one plugin's error is reported
        against that plugin and the others still register.
        """
        for kind in PROVIDER_KINDS:
            caller = getattr(self.pm.hook, f"register_{kind}")
            for impl in caller.get_hookimpls():
                info = self.plugins.get(impl.plugin_name)
                if info is None or info.error is not None:
                    continue
                register = self._registrar(kind, info)
                try:
                    impl.function(*[{"register": register}[a] for a in impl.argnames])
                except PluginError:
                    raise
                except Exception as exc:
                    info.error = f"register_{kind} failed: {type(exc).__name__}: {exc}"
                    logger.warning("plugin %s: %s", info.name, info.error)

    def collect_tools(self) -> None:
        """Call every plugin's ``register_tools`` hook (again: the result replaces what
        an earlier collection found). A plugin that registers something other than a
        :class:`FunctionTool`, or a tool whose name a built-in tool or another plugin's
        tool already has, gets that error (naming both) and none of its tools are used;
        ``voicekit plugins`` lists it, and the other plugins carry on."""
        self.tools = {}
        owners = {name: "voicekit (a built-in tool)" for name in BUILTIN_TOOL_NAMES}
        for impl in self.pm.hook.register_tools.get_hookimpls():
            info = self.plugins.get(impl.plugin_name)
            if info is None or info.error is not None:
                continue
            mine: dict[str, FunctionTool] = {}

            def register(
                tool: FunctionTool, info: PluginInfo = info, mine: dict[str, FunctionTool] = mine
            ) -> None:
                if not isinstance(tool, FunctionTool):
                    raise PluginError(
                        f"registered {tool!r} as a tool, but it is not a voicekit.FunctionTool"
                        " (decorate the function with @voicekit.tool)"
                    )
                owner = owners.get(tool.name) or (
                    f"plugin {info.name!r}" if tool.name in mine else None
                )
                if owner is not None:
                    raise PluginError(
                        f"registered a tool named {tool.name!r}, which {owner} already has; "
                        f"rename one, or skip a plugin with {BLOCK_ENV}"
                    )
                mine[tool.name] = tool

            try:
                impl.function(*[{"register": register}[a] for a in impl.argnames])
            except Exception as exc:
                what = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
                info.error = f"register_tools failed: {what}"
                logger.warning("plugin %s: %s", info.name, info.error)
                continue
            for name, tool in mine.items():
                owners[name] = f"plugin {info.name!r}"
                self.tools[name] = tool
            info.tools = list(mine)

    def _registrar(
        self, kind: ProviderKind, info: PluginInfo
    ) -> Callable[[type[Provider[Any]]], None]:
        def register(cls: type[Provider]) -> None:
            self.registry.add(kind, cls, info)

        return register


def load_plugins(environ: Mapping[str, str] | None = None) -> PluginManager:
    """A plugin manager with every installed plugin loaded (per the env lists)."""
    manager = PluginManager()
    manager.load_entry_points(environ)
    return manager
