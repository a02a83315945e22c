"""A variable's value as its declared type, from what a pattern matched or a model wrote."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from voicekit.flows.model import ExtractField

__all__ = ["coerce", "json_schema", "normalize_utterance"]

MAX_NUMBER = 1e15  # beyond any booking, price or count a caller says
_YES = frozenset({"yes", "yeah", "yep", "true", "correct", "right", "sure", "y"})
_NO = frozenset({"no", "nope", "false", "incorrect", "wrong", "n"})
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_NOT_WORD = re.compile(r"[^\w\s']+")
_SPACES = re.compile(r"\s+")


def coerce(field: ExtractField, value: Any) -> Any | None:
    """``value`` as ``field``'s type, or None when it is not one."""
    if value is None or isinstance(value, dict | list):
        return None
    if field.type == "boolean":
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower().rstrip(".!")
        return True if word in _YES else False if word in _NO else None
    if isinstance(value, bool):
        return None
    text = str(value).strip()
    if field.type == "number":
        if isinstance(value, int | float):
            return value if math.isfinite(value) and abs(value) < MAX_NUMBER else None
        match = _NUMBER.search(text.replace(",", ""))
        if match is None:
            return None
        number = float(match[0])
        if not math.isfinite(number) or abs(number) >= MAX_NUMBER:
            return None
        return int(number) if number.is_integer() else number
    if field.type == "date":
        try:
            return dt.date.fromisoformat(text[:10]).isoformat()
        except ValueError:
            return None
    if field.type == "enum":
        by_lower = {v.lower(): v for v in field.values or ()}
        return by_lower.get(text.lower())
    return text or None


def json_schema(field: ExtractField) -> dict[str, Any]:
    """How the variable is offered to the model, as a JSON Schema property."""
    description = field.description or field.name.replace("_", " ")
    if field.type == "number":
        return {"type": "number", "description": description}
    if field.type == "boolean":
        return {"type": "boolean", "description": description}
    if field.type == "date":
        return {"type": "string", "description": f"{description} (YYYY-MM-DD)"}
    if field.type == "enum":
        return {"type": "string", "enum": list(field.values or ()), "description": description}
    return {"type": "string", "description": description}


def normalize_utterance(text: str) -> str:
    """What two ways of saying the same words have in common: case, punctuation and
    spacing removed (the key a decision is cached under)."""
    return _SPACES.sub(" ", _NOT_WORD.sub(" ", text.lower())).strip()
