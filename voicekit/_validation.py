"""One phrasing of pydantic validation errors for every message voicekit prints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["describe_error"]


def describe_error(err: Mapping[str, Any], *, unknown: str = "is not a known setting") -> str:
    """'what is wrong, what is allowed' for one pydantic error, to follow the field name."""
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return unknown
    if kind == "missing":
        return "is required"
    msg = str(err.get("msg", ""))
    return msg[0].lower() + msg[1:] if msg else "is invalid"
