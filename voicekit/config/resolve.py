"""Check the configured providers against the registry, and render settings safely.

Kept apart from loading because it needs the plugins: a settings file can be parsed on a
machine with no plugins installed, but only resolved where they are.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

from voicekit.config.settings import NO_LLM, VoiceKitSettings
from voicekit.errors import ConfigError, PluginError, ProviderNotFoundError
from voicekit.plugins.registry import ProviderRegistry, credential_env_vars
from voicekit.provider import PROVIDER_KINDS, Provider, ProviderKind, ProviderSettings

if TYPE_CHECKING:
    from voicekit.llm import LLM
    from voicekit.stt import STT
    from voicekit.telephony import Telephony
    from voicekit.tts import TTS

__all__ = [
    "MASK",
    "PUBLIC_URL_MISSING",
    "ResolvedProviders",
    "config_warnings",
    "create_provider",
    "masked_settings",
    "resolve_providers",
    "server_problems",
    "server_warnings",
]

MASK = "**********"
_SECRET_WORDS = ("key", "secret", "token", "password", "authorization")


@dataclass(frozen=True, slots=True)
class ResolvedProviders:
    """The validated settings of the provider chosen for each role."""

    names: dict[ProviderKind, str]
    settings: dict[ProviderKind, ProviderSettings]


def resolve_providers(
    settings: VoiceKitSettings,
    registry: ProviderRegistry,
    *,
    kinds: tuple[ProviderKind, ...] = PROVIDER_KINDS,
) -> ResolvedProviders:
    """Validate that each chosen provider exists and its options are valid.

    All problems are reported together, so one run of ``voicekit config check`` shows
    everything to fix.
    """
    problems: list[str] = []
    names: dict[ProviderKind, str] = {}
    resolved: dict[ProviderKind, ProviderSettings] = {}
    for kind in kinds:
        name = getattr(settings, kind).provider
        names[kind] = name
        if kind == "llm" and name == NO_LLM:
            continue  # no LLM: nothing to resolve
        try:
            options = registry.options(kind, name, settings.providers)
            resolved[kind] = registry.settings(
                kind,
                name,
                options,
                source=f"[providers.{name}]",
                origins=_option_origins(kind, name, registry, settings.providers, options),
            )
        except ProviderNotFoundError as exc:
            problems.append(f"[{kind}] provider: {exc}")
            continue
        except ConfigError as exc:
            problems.append(str(exc))
        try:
            registry.check_installed(kind, name)
        except PluginError as exc:
            problems.append(f"[{kind}] provider: {exc}")
    if "telephony" in resolved:
        problems += server_problems(settings, registry.get("telephony", names["telephony"]))
    if problems:
        raise ConfigError("\n".join(problems))
    return ResolvedProviders(names, resolved)


def telephony_configured(settings: VoiceKitSettings, registry: ProviderRegistry) -> bool:
    """Whether anything of the telephony is set up: a chosen provider, its table, one
    of its credential variables in the environment (even empty), or a ``[server]``
    setting that only a serving server has (``public_url``, ``host``, ``port``,
    ``media_auth_secret``, ``max_calls``). A fresh install has none of these, and runs
    calls only through ``voicekit simulate``."""
    name = settings.telephony.provider
    if "telephony" in settings.model_fields_set or name in settings.providers:
        return True
    if settings.server.model_fields_set & _SERVING:
        return True
    try:
        env_vars = credential_env_vars(registry.get("telephony", name).Settings)
    except ProviderNotFoundError:
        return True
    return any(var in os.environ for var in env_vars.values())  # set, even if empty


# [server] settings only a server that answers calls sets: with any of them, the
# telephony is expected to be complete.
_SERVING = {"public_url", "host", "port", "media_auth_secret", "max_calls"}


NO_LLM_CONFIGURED = (
    '[llm] provider is "none": no LLM is configured; set [llm] provider (openai, '
    "anthropic, grok) and its API key (or VOICEKIT_LLM__PROVIDER)"
)

PUBLIC_URL_MISSING = (
    "server.public_url is not set: set [server] public_url (or VOICEKIT_SERVER__PUBLIC_URL) "
    "to the https URL at which your telephony provider reaches this server, e.g. "
    "https://voice.example.com; voicekit never takes it from a request's Host header"
)


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def server_warnings(settings: VoiceKitSettings) -> list[str]:
    """Settings that work but that a public server should not run with."""
    url = settings.server.public_url
    if (
        url is not None
        and url.startswith("http://")
        and urlsplit(url).hostname not in (LOOPBACK_HOSTS)
    ):
        return [
            "server.public_url is http://: media tokens and call audio would cross the "
            "network unencrypted (ws://); use https:// (TLS at your proxy) in production"
        ]
    return []


# Variables with the prefix that are not settings sections.
OTHER_ENV = {"VOICEKIT_CONFIG", "VOICEKIT_LOAD_PLUGINS", "VOICEKIT_BLOCK_PLUGINS"}


def config_warnings(
    settings: VoiceKitSettings,
    registry: ProviderRegistry | None = None,
    environ: Mapping[str, str] | None = None,
    plugins: Iterable[str] = (),
) -> list[str]:
    """What looks like a mistake but does not stop voicekit: a misspelt environment
    section (ignored by the settings loader), an option no provider of that name has in a
    table not in use (not validated, since nothing reads it), a table no provider owns."""
    warnings = server_warnings(settings) + agent_warnings(settings)
    sections = set(type(settings).model_fields)
    for var in sorted(os.environ if environ is None else environ):
        upper = var.upper()
        if not upper.startswith("VOICEKIT_") or upper in OTHER_ENV:
            continue
        section = upper.removeprefix("VOICEKIT_").split("__", 1)[0].lower()
        if section not in sections:
            hint = _did_you_mean(section, sections)
            warnings.append(
                f"environment variable {var}: there is no section {section!r}{hint}; "
                "it is ignored (the form is VOICEKIT_<SECTION>__<FIELD>)"
            )
    if registry is not None:
        warnings += _table_warnings(settings, registry, set(plugins))
    return warnings


_DESTINATION = re.compile(r"^(\+[1-9]\d{6,14}|sips?:[^\s@]+@[^\s@]+)$")


def agent_warnings(settings: VoiceKitSettings) -> list[str]:
    """Tool settings that cannot work as meant: a transfer tool with nowhere to transfer
    to, an allow-list no tool uses, destinations the telephony would refuse."""
    agent = settings.agent
    warnings = []
    offers_transfer = "transfer_call" in agent.builtin_tools
    if offers_transfer and not agent.transfer_allowlist:
        warnings.append(
            "[agent] builtin_tools has transfer_call but transfer_allowlist is empty: every "
            "transfer will be refused; list the numbers (E.164) or SIP URIs it may use"
        )
    has_flow = settings.flow.file is not None or settings.flow.inline is not None
    if agent.transfer_allowlist and not offers_transfer and not has_flow:
        warnings.append(
            "[agent] transfer_allowlist is set but builtin_tools has no transfer_call: the "
            'model cannot transfer (add "transfer_call" to builtin_tools)'
        )
    for entry in agent.transfer_allowlist:
        if not _DESTINATION.match(_normal_destination(entry)):
            warnings.append(
                f"[agent] transfer_allowlist entry {entry!r} is neither an E.164 number "
                "(+15551230000) nor a SIP URI (sip:desk@pbx.example.com); the telephony "
                "provider will refuse to transfer to it"
            )
    return warnings


def _normal_destination(entry: str) -> str:
    text = entry.strip()
    return text if text.lower().startswith("sip") else re.sub(r"[\s().-]", "", text)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _table_warnings(
    settings: VoiceKitSettings, registry: ProviderRegistry, plugins: set[str]
) -> list[str]:
    by_table: dict[str, set[str]] = {}  # table name -> options some provider reads from it
    for kind in PROVIDER_KINDS:
        for name in registry.names(kind):
            registration = registry.registration(kind, name)
            fields = set(registration.cls.Settings.model_fields) | set(PROVIDER_KINDS)
            by_table.setdefault(name, set()).update(fields)
            by_table.setdefault(registration.plugin.name, set()).update(fields)
    in_use = {getattr(settings, kind).provider for kind in PROVIDER_KINDS}
    warnings = []
    for table, options in settings.providers.items():
        if table not in by_table and table in plugins:
            warnings.append(
                f"[providers.{table}]: the {table!r} plugin registers no provider "
                "(`voicekit plugins` says why); the table is ignored"
            )
            continue
        if table not in by_table:
            hint = _did_you_mean(table, by_table)
            warnings.append(
                f"[providers.{table}]: no installed provider or plugin is named {table!r}"
                f"{hint}; the table is ignored (`voicekit plugins` lists them)"
            )
            continue
        if table in in_use:
            continue  # validated as the provider is built: unknown options are errors there
        for option in sorted(set(options) - by_table[table]):
            hint = _did_you_mean(option, by_table[table])
            warnings.append(f"[providers.{table}] {option}: not an option of {table}{hint}")
    return warnings


def server_problems(settings: VoiceKitSettings, telephony: type[Provider]) -> list[str]:
    """What keeps these settings from serving calls with this telephony provider class."""
    if getattr(telephony, "needs_public_url", False) and settings.server.public_url is None:
        return [PUBLIC_URL_MISSING]
    return []


@overload
def create_provider(
    settings: VoiceKitSettings, kind: Literal["stt"], *, plugins: Any = None
) -> STT: ...
@overload
def create_provider(
    settings: VoiceKitSettings, kind: Literal["llm"], *, plugins: Any = None
) -> LLM: ...
@overload
def create_provider(
    settings: VoiceKitSettings, kind: Literal["tts"], *, plugins: Any = None
) -> TTS: ...
@overload
def create_provider(
    settings: VoiceKitSettings, kind: Literal["telephony"], *, plugins: Any = None
) -> Telephony: ...
def create_provider(settings: VoiceKitSettings, kind: ProviderKind, *, plugins: Any = None) -> Any:
    """The provider ``settings`` select for ``kind`` (``[tts] provider = ...``), with its
    ``[providers.<name>]`` options validated, ready to use::

        tts = voicekit.create_provider(voicekit.load_settings("voicekit.toml"), "tts")
        async with tts, tts.session(voicekit.ULAW_8K) as session: ...

    ``plugins`` is a loaded :class:`~voicekit.plugins.PluginManager` (or its registry);
    by default the installed plugins are loaded. Raises :class:`ConfigError` naming the
    field and the fix when the options are wrong.
    """
    if kind not in PROVIDER_KINDS:
        raise ValueError(f"kind must be one of {', '.join(PROVIDER_KINDS)}, not {kind!r}")
    if plugins is None:
        from voicekit.plugins.manager import load_plugins

        plugins = load_plugins()
    registry: ProviderRegistry = getattr(plugins, "registry", plugins)
    name = getattr(settings, kind).provider
    if kind == "llm" and name == NO_LLM:
        raise ConfigError(NO_LLM_CONFIGURED)
    options = registry.options(kind, name, settings.providers)
    return registry.instantiate(
        kind,
        name,
        registry.settings(
            kind,
            name,
            options,
            source=f"[providers.{name}]",
            origins=_option_origins(kind, name, registry, settings.providers, options),
        ),
    )


def _option_origins(
    kind: ProviderKind,
    name: str,
    registry: ProviderRegistry,
    tables: Mapping[str, Mapping[str, Any]],
    options: dict[str, Any],
) -> dict[str, str]:
    """Where options came from when that is not the provider's own table: a
    ``VOICEKIT_PROVIDERS__...`` variable, or the table of its plugin (a variant)."""
    env = {k.upper(): k for k in os.environ}
    plugin = registry.registration(kind, name).plugin.name
    found: dict[str, str] = {}
    for option in options:
        for table in dict.fromkeys((name, plugin)):
            for middle in (f"{kind.upper()}__", ""):
                var = f"VOICEKIT_PROVIDERS__{table.upper()}__{middle}{option.upper()}"
                if var in env and option not in found:
                    found[option] = f"environment variable {env[var]}"
        own = tables.get(name, {})
        if option not in found and option not in own and option in tables.get(plugin, {}):
            found[option] = f"[providers.{plugin}]"
    return found


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, BaseModel):
        return {k: _mask(getattr(value, k)) for k in type(value).model_fields}
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def _mask_raw_table(table: dict[str, Any], secret_fields: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        lowered = key.lower()
        if key in secret_fields or any(w in lowered for w in _SECRET_WORDS):
            out[key] = MASK if value else value
        elif isinstance(value, dict):
            out[key] = _mask_raw_table(value, set())
        else:
            out[key] = value
    return out


def masked_settings(
    settings: VoiceKitSettings,
    resolved: ResolvedProviders | None = None,
    registry: ProviderRegistry | None = None,
) -> dict[str, Any]:
    """The effective settings as plain data with every secret replaced by a mask.

    Chosen providers show their full validated options (defaults and credentials from
    the environment included); other provider tables are shown as written, with any
    credential-looking value masked.
    """
    data = {
        name: _mask(getattr(settings, name))
        for name in type(settings).model_fields
        if name != "providers"
    }
    providers: dict[str, Any] = {}
    chosen: dict[str, dict[str, Any]] = {}
    if resolved is not None:
        for kind, model in resolved.settings.items():
            chosen.setdefault(resolved.names[kind], {})[kind] = _mask(model)
    for name, table in settings.providers.items():
        if name in chosen:
            continue
        secret_fields: set[str] = set()
        if registry is not None:
            for kind in PROVIDER_KINDS:
                if name in registry.names(kind):
                    secret_fields |= set(credential_env_vars(registry.get(kind, name).Settings))
        providers[name] = _mask_raw_table(table, secret_fields)
    for name, by_kind in chosen.items():
        # A name chosen for one role shows flat; for several roles, one sub-table each.
        providers[name] = next(iter(by_kind.values())) if len(by_kind) == 1 else by_kind
    data["providers"] = providers
    return data
