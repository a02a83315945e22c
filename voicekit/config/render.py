"""Render plain settings data as TOML, so ``config check`` output can be pasted back
into a ``voicekit.toml``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["to_toml"]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_scalar(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value), ensure_ascii=False)


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _emit(table: Mapping[str, Any], path: list[str], out: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping) and v is not None}
    unset = [k for k, v in table.items() if v is None]
    subtables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    if path and (scalars or unset or not subtables):
        out.append(f"\n[{'.'.join(_key(p) for p in path)}]")
    for key, value in scalars.items():
        out.append(f"{_key(key)} = {_scalar(value)}")
    for key in unset:
        out.append(f"# {_key(key)} is not set")
    for key, value in subtables.items():
        _emit(value, [*path, key], out)


def to_toml(data: Mapping[str, Any]) -> str:
    """TOML text for nested plain data; ``None`` values become comments (TOML has no null)."""
    out: list[str] = []
    _emit(data, [], out)
    return "\n".join(out).lstrip("\n") + "\n"
