"""The provider registry: which provider classes exist, who registered them, and how to
build one from configuration.

The core owns names: two plugins registering the same name for the same kind is an error
naming both, and a provider's options are validated against its ``Settings`` model with
errors that name the provider and the field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr, ValidationError

from voicekit._validation import describe_error, wants_structure
from voicekit.errors import ConfigError, PluginError, ProviderNotFoundError
from voicekit.llm import LLM
from voicekit.provider import PROVIDER_KINDS, Provider, ProviderKind, ProviderSettings
from voicekit.stt import STT
from voicekit.telephony import Telephony
from voicekit.tts import TTS

__all__ = [
    "PluginInfo",
    "ProviderRegistry",
    "Registration",
    "credential_env_vars",
    "validate_settings",
]

_BASES: dict[ProviderKind, type[Provider]] = {
    "stt": STT,
    "llm": LLM,
    "tts": TTS,
    "telephony": Telephony,
}


@dataclass(slots=True)
class PluginInfo:
    """A loaded (or failed) plugin, as ``voicekit plugins`` shows it."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    error: str | None = None
    providers: list[tuple[ProviderKind, str]] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    install_hint: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class Registration:
    kind: ProviderKind
    name: str
    cls: type[Provider]
    plugin: PluginInfo


def credential_env_vars(settings_cls: type[ProviderSettings]) -> dict[str, str]:
    """Field name → conventional environment variable, for fields declared ``credential``."""
    found: dict[str, str] = {}
    for fname, finfo in settings_cls.model_fields.items():
        extra = finfo.json_schema_extra
        if isinstance(extra, dict) and isinstance(extra.get("env"), str):
            found[fname] = str(extra["env"])
    return found


def validate_settings(
    settings_cls: type[ProviderSettings],
    options: Mapping[str, Any] | None = None,
    *,
    label: str,
    prefix: str,
    source: str,
    environ: Mapping[str, str] | None = None,
    origins: Mapping[str, str] | None = None,
) -> ProviderSettings:
    """Validate provider options, filling credentials from their environment variables.

    Errors name the provider (``label``), each bad field under ``prefix``, what is allowed,
    where a value came from when ``origins`` says (an environment variable), and for a
    missing credential the variable to set. A text value for an option that takes a list
    or a table is read as JSON: environment variables can only carry text.
    """
    env = os.environ if environ is None else environ
    values = _parse_structured(settings_cls, dict(options or {}))
    cred_env = credential_env_vars(settings_cls)
    for fname, var in cred_env.items():
        if values.get(fname) in (None, "") and env.get(var):
            values[fname] = env[var]
    try:
        return settings_cls.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(options)"
            line = f"{prefix}.{loc} {describe_error(err, unknown='is not a known option')}"
            origin = (origins or {}).get(str(err["loc"][0])) if err["loc"] else None
            if origin:
                line += f" (from {origin})"
            top = str(err["loc"][0]) if err["loc"] else ""
            if top in cred_env and err.get("type") == "missing":
                line += f": set the environment variable {cred_env[top]} or {top} in {source}"
            elif err.get("type") == "extra_forbidden":
                known = ", ".join(sorted(settings_cls.model_fields))
                line += f" (known options: {known})"
            problems.append(line)
        raise ConfigError(
            f"invalid settings for {label} in {source}:\n  " + "\n  ".join(problems)
        ) from None


def _parse_structured(
    settings_cls: type[ProviderSettings], values: dict[str, Any]
) -> dict[str, Any]:
    for name, value in values.items():
        field = settings_cls.model_fields.get(name)
        if field is None or not isinstance(value, str) or value.strip()[:1] not in ("[", "{"):
            continue
        if wants_structure(field.annotation):
            try:
                values[name] = json.loads(value)
            except ValueError:
                pass  # validation reports the text as the wrong type
    return values


class ProviderRegistry:
    """Provider classes by kind and name."""

    def __init__(self) -> None:
        self._entries: dict[ProviderKind, dict[str, Registration]] = {k: {} for k in PROVIDER_KINDS}

    def add(self, kind: ProviderKind, cls: type[Provider], plugin: PluginInfo) -> None:
        base = _BASES[kind]
        if not isinstance(cls, type) or not issubclass(cls, base):
            raise PluginError(
                f"plugin {plugin.name!r} registered {cls!r} as an {kind} provider, but it is "
                f"not a subclass of voicekit.{base.__name__}"
            )
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name or name != name.strip():
            raise PluginError(
                f"plugin {plugin.name!r}: {kind} provider {cls.__qualname__} needs a "
                "non-empty class attribute `name`"
            )
        settings_cls = getattr(cls, "Settings", None)
        if not (isinstance(settings_cls, type) and issubclass(settings_cls, ProviderSettings)):
            raise PluginError(
                f"plugin {plugin.name!r}: {kind} provider {name!r} needs `Settings`, a "
                "subclass of voicekit.ProviderSettings"
            )
        for fname in credential_env_vars(settings_cls):
            annotation = settings_cls.model_fields[fname].annotation
            if annotation not in (SecretStr, SecretStr | None):
                raise PluginError(
                    f"plugin {plugin.name!r}: {kind} provider {name!r} declares credential "
                    f"{fname!r} as {annotation!r}; it must be SecretStr (or SecretStr | None) "
                    "so it can never be printed or logged"
                )
        existing = self._entries[kind].get(name)
        if existing is not None and existing.cls is not cls:
            raise PluginError(
                f"{kind} provider {name!r} is registered by both plugin "
                f"{existing.plugin.name!r} ({existing.cls.__module__}) and plugin "
                f"{plugin.name!r} ({cls.__module__}); remove one, or block it with "
                f"VOICEKIT_BLOCK_PLUGINS={plugin.name}"
            )
        self._entries[kind][name] = Registration(kind, name, cls, plugin)
        if (kind, name) not in plugin.providers:
            plugin.providers.append((kind, name))

    def names(self, kind: ProviderKind) -> list[str]:
        return sorted(self._entries[kind])

    def registration(self, kind: ProviderKind, name: str) -> Registration:
        try:
            return self._entries[kind][name]
        except KeyError:
            installed = ", ".join(self.names(kind)) or "none"
            raise ProviderNotFoundError(
                f"no {kind} provider named {name!r}; installed {kind} providers: {installed}. "
                "`voicekit plugins` lists every plugin and the extras still to install."
            ) from None

    def get(self, kind: ProviderKind, name: str) -> type[Provider]:
        return self.registration(kind, name).cls

    def options_for(
        self, kind: ProviderKind, name: str, table: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The options of the ``kind`` provider ``name`` from its ``[providers.<name>]`` table.

        One name can serve several roles (``local`` is both STT and TTS), so the table may
        hold keys of each: a role takes the top-level keys its settings know, plus its own
        ``[providers.<name>.<kind>]`` sub-table, which wins. A key that no role of that
        name knows stays in, so validation reports it.
        """
        sub = table.get(kind)
        own = dict(sub) if isinstance(sub, Mapping) else {}
        top = {k: v for k, v in table.items() if k not in PROVIDER_KINDS}
        sharing = [k for k in PROVIDER_KINDS if k != kind and name in self._entries[k]]
        if sharing:
            mine = set(self.get(kind, name).Settings.model_fields)
            others: set[str] = set()
            for other in sharing:
                others |= set(self.get(other, name).Settings.model_fields)
            top = {k: v for k, v in top.items() if k in mine or k not in others}
        return {**top, **own}

    def options(
        self, kind: ProviderKind, name: str, tables: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, Any]:
        """The options of provider ``name`` from all ``[providers.*]`` tables.

        Besides its own table, a provider reads the table of the plugin that registered
        it: ``elevenlabs-rest`` (a variant of the ``elevenlabs`` plugin) takes the voice and
        model of ``[providers.elevenlabs]``, so swapping variants is one line. Its own
        table wins; keys of the plugin's table that only a sibling provider knows are
        left to that sibling.
        """
        own = self.options_for(kind, name, tables.get(name, {}))
        plugin = self.registration(kind, name).plugin.name
        if plugin == name or plugin not in tables:
            return own
        shared = self.options_for(kind, name, tables[plugin])
        mine = set(self.get(kind, name).Settings.model_fields)
        siblings: set[str] = set()
        for entries in self._entries.values():
            for other in entries.values():
                if other.plugin.name == plugin and other.name != name:
                    siblings |= set(other.cls.Settings.model_fields)
        shared = {k: v for k, v in shared.items() if k in mine or k not in siblings}
        return {**shared, **own}

    def settings(
        self,
        kind: ProviderKind,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        source: str = "[providers]",
        environ: Mapping[str, str] | None = None,
        origins: Mapping[str, str] | None = None,
    ) -> ProviderSettings:
        """Validate ``options`` for provider ``name``, filling credentials from the environment.

        ``source`` says where the options came from, for the error message, and
        ``origins`` where single options did (an environment variable).
        """
        return validate_settings(
            self.get(kind, name).Settings,
            options,
            label=f"{kind} provider {name!r}",
            prefix=f"providers.{name}",
            source=source,
            environ=environ,
            origins=origins,
        )

    def create(
        self,
        kind: ProviderKind,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        source: str = "[providers]",
        environ: Mapping[str, str] | None = None,
    ) -> Provider:
        """Build a provider instance from its options (validated first)."""
        self.check_installed(kind, name)
        return self.instantiate(
            kind, name, self.settings(kind, name, options, source=source, environ=environ)
        )

    def instantiate(self, kind: ProviderKind, name: str, settings: ProviderSettings) -> Provider:
        """Build a provider from settings already validated (see :meth:`settings`)."""
        self.check_installed(kind, name)
        return self.registration(kind, name).cls(settings)

    def check_installed(self, kind: ProviderKind, name: str) -> None:
        """A :class:`PluginError` with the pip command when the plugin that registered
        provider ``name`` lacks packages it needs (it loaded, but cannot run)."""
        plugin = self.registration(kind, name).plugin
        if plugin.missing:
            raise PluginError(
                f"{kind} provider {name!r} needs packages that are not installed "
                f"({', '.join(plugin.missing)}): {plugin.install_hint}"
            )
