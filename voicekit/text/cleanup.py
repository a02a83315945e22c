"""Make a piece of LLM text fit to be spoken: markdown out, whitespace tidy.

Applied to each finished piece, never to the stream, so markup split across tokens
("*" then "*") is removed just the same.
"""

from __future__ import annotations

import re

__all__ = ["clean_segment"]

_HEADING = re.compile(r"^\s*#{1,6}\s+")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+(?=\S)")
_EMPHASIS = re.compile(r"\*\*|__|`+|~~")
_WS = re.compile(r"\s+")
_SPEAKABLE = re.compile(r"[\w<]")


def clean_segment(text: str) -> str:
    """Drop markdown that should not be spoken and normalise whitespace.

    Removes headings (``#``), list bullets (``-``, ``*``, ``•``), bold/italic/code marks
    (``**``, ``__``, backticks); keeps numbered-list numbers ("1. Open the app" reads
    well). Returns "" for a piece with nothing to say.
    """
    text = _HEADING.sub("", text)
    bullet = _BULLET.match(text)
    if bullet and not bullet.group(0).strip()[0].isdigit():
        text = text[bullet.end() :]
    text = _EMPHASIS.sub("", text)
    text = _WS.sub(" ", text).strip()
    return text if _SPEAKABLE.search(text) else ""
