"""Load settings from file, environment and arguments, with errors a person can act on.

Every error names where the bad value came from (the file, the environment variable or
the argument), the field, and what is allowed.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from voicekit._validation import describe_error, wants_structure
from voicekit.config.settings import ENV_PREFIX, VoiceKitSettings, _file_data
from voicekit.errors import ConfigError

__all__ = ["CONFIG_ENV", "load_settings", "read_config_file"]

CONFIG_ENV = "VOICEKIT_CONFIG"


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a ``voicekit.toml``; syntax errors name the line and column."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"config file {p} does not exist (given by --config or {CONFIG_ENV})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {p} cannot be read: {exc.strerror}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: TOML syntax error: {exc}") from None


def _has_path(data: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    node: Any = data
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _origin(
    loc: tuple[str, ...],
    overrides: Mapping[str, Any],
    file_data: Mapping[str, Any],
    file_name: str | None,
) -> str:
    if _has_path(overrides, loc):
        return "argument"
    env_names = {k.upper() for k in os.environ}
    for depth in range(len(loc), 0, -1):
        var = ENV_PREFIX + "__".join(loc[:depth]).upper()
        if var in env_names:
            return f"environment variable {var}"
    if file_name is not None and _has_path(file_data, loc[:1]):
        return file_name
    return "defaults"


def load_settings(
    config: str | os.PathLike[str] | None = None, **overrides: Any
) -> VoiceKitSettings:
    """Build the effective settings.

    ``config`` is the TOML path (else ``$VOICEKIT_CONFIG``, else no file); keyword
    ``overrides`` are section dicts (``agent={"greeting": "Hi"}``) that win over everything.
    """
    path = config if config is not None else os.environ.get(CONFIG_ENV) or None
    file_data = read_config_file(path) if path else {}
    file_name = str(path) if path else None
    unknown = sorted(set(file_data) - set(VoiceKitSettings.model_fields))
    if unknown:
        known = ", ".join(f"[{k}]" for k in VoiceKitSettings.model_fields)
        raise ConfigError(
            f"{file_name}: unknown section(s) {', '.join(repr(u) for u in unknown)}; "
            f"the sections are {known}"
        )
    token = _file_data.set(file_data)
    try:
        return VoiceKitSettings(**overrides)
    except SettingsError:
        raise ConfigError(_unparsable_env()) from None
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            field = ".".join(loc) or "(settings)"
            origin = _origin(loc, overrides, file_data, file_name)
            lines.append(f"{origin}: {field} {describe_error(err)}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
    finally:
        _file_data.reset(token)


def _unparsable_env() -> str:
    """What to say when the settings loader could not parse an environment variable:
    the variables of list and table settings whose values are not JSON."""
    bad = []
    for var, value in sorted(os.environ.items()):
        upper = var.upper()
        if not upper.startswith(ENV_PREFIX):
            continue
        section, _, name = upper.removeprefix(ENV_PREFIX).lower().partition("__")
        model = VoiceKitSettings.model_fields.get(section)
        fields = getattr(model.annotation, "model_fields", {}) if model is not None else {}
        field = fields.get(name)
        if field is None or not wants_structure(field.annotation):
            continue
        try:
            json.loads(value)
        except ValueError:
            bad.append(
                f"environment variable {var}: {section}.{name} takes a JSON list or table, "
                f'e.g. {var}=\'["one", "two"]\' (got {value[:40]!r})'
            )
    return "invalid settings:\n  " + (
        "\n  ".join(bad)
        or "an environment variable VOICEKIT_* is not valid JSON where a list or table is expected"
    )
