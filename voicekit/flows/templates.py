"""``{{variable}}`` and ``{{env.NAME}}`` templates in flow text, URLs, headers and bodies.

A variable the call has not filled renders as nothing (the sentence around it is tidied),
so a script never reads out a placeholder. ``{{env.NAME}}`` is resolved only where the
flow sends it to a webhook: env values are secrets, and are never spoken or logged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

__all__ = ["ENV_PREFIX", "names_in", "process_env", "render_text", "render_url", "render_value"]

ENV_PREFIX = "env."
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\s*\}\}")
_LOOSE_SPACE = re.compile(r"\s+([,.!?;:])|\s{2,}")


def names_in(value: Any) -> list[str]:
    """Every name a template (or a JSON-like structure of them) refers to, in order."""
    if isinstance(value, str):
        return _PLACEHOLDER.findall(value)
    if isinstance(value, Mapping):
        return [n for v in value.values() for n in names_in(v)]
    if isinstance(value, list | tuple):
        return [n for v in value for n in names_in(v)]
    return []


def _spoken(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render_text(
    text: str,
    variables: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
) -> str:
    """``text`` with each placeholder replaced; ``env`` (None: none allowed) resolves
    ``{{env.NAME}}``."""

    def one(match: re.Match[str]) -> str:
        name = match[1]
        if name.startswith(ENV_PREFIX):
            if env is None:
                return ""
            return env.get(name[len(ENV_PREFIX) :], "")
        return _spoken(variables.get(name))

    rendered = _PLACEHOLDER.sub(one, text)
    if rendered == text:
        return text
    return _LOOSE_SPACE.sub(lambda m: m[1] or " ", rendered).strip()


def render_value(value: Any, variables: Mapping[str, Any], *, env: Mapping[str, str]) -> Any:
    """A webhook body or header value with templates resolved. A string that is a single
    ``{{variable}}`` keeps the variable's type (a number stays a number in JSON)."""
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value.strip())
        if whole and not whole[1].startswith(ENV_PREFIX):
            return variables.get(whole[1])
        return _PLACEHOLDER.sub(
            lambda m: (
                env.get(m[1][len(ENV_PREFIX) :], "")
                if m[1].startswith(ENV_PREFIX)
                else _spoken(variables.get(m[1]))
            ),
            value,
        )
    if isinstance(value, Mapping):
        return {k: render_value(v, variables, env=env) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, variables, env=env) for v in value]
    return value


def render_url(url: str, variables: Mapping[str, Any], *, env: Mapping[str, str]) -> str:
    """A webhook URL: variables are percent-encoded (a caller's words cannot add a path
    segment or a query parameter); env values go in as written (a base URL, a key)."""

    def one(match: re.Match[str]) -> str:
        name = match[1]
        if name.startswith(ENV_PREFIX):
            return env.get(name[len(ENV_PREFIX) :], "")
        value = _spoken(variables.get(name))
        if value and not value.strip("."):  # "." and ".." would climb the URL's path
            raise ValueError(f"the value of {name} is not a URL segment")
        return quote(value, safe="")

    return _PLACEHOLDER.sub(one, url)


def process_env() -> Mapping[str, str]:
    """The environment webhooks' ``{{env.NAME}}`` read from."""
    return os.environ
