"""One phrasing of pydantic validation errors for every message voicekit prints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

__all__ = ["describe_error", "wants_structure"]


def describe_error(err: Mapping[str, Any], *, unknown: str = "is not a known setting") -> str:
    """'what is wrong, what is allowed' for one pydantic error, to follow the field name."""
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return unknown
    if kind == "missing":
        return "is required"
    msg = str(err.get("msg", ""))
    return msg[0].lower() + msg[1:] if msg else "is invalid"


def wants_structure(annotation: Any) -> bool:
    """Whether a field takes a list, tuple, set, mapping or model rather than text."""
    if annotation is str:
        return False
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        args = get_args(annotation)
        return str not in args and any(wants_structure(a) for a in args)
    if origin in (list, tuple, set, frozenset, dict) or (
        origin is not None and (isinstance(origin, type) and issubclass(origin, Mapping | Sequence))
    ):
        return True
    return isinstance(annotation, type) and issubclass(annotation, BaseModel | list | dict | tuple)
