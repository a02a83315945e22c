"""Spot an answering machine or IVR from the first thing the "caller" says."""

from __future__ import annotations

from collections.abc import Iterable

from voicekit.session.bargein import words

__all__ = ["VoicemailDetector"]


class VoicemailDetector:
    def __init__(self, phrases: Iterable[str]) -> None:
        self._phrases = [words(p) for p in phrases if words(p)]

    def matches(self, text: str) -> str | None:
        """The phrase found in ``text`` (word-wise, case-insensitive), or None."""
        said = words(text)
        for phrase in self._phrases:
            n = len(phrase)
            if any(said[i : i + n] == phrase for i in range(len(said) - n + 1)):
                return " ".join(phrase)
        return None
