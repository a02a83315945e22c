"""What makes two syntheses the same audio: provider, voice, its settings, format, text.

The key is a SHA-256 over a canonical JSON of those parts, so it names a file on disk
without revealing the text, and any change to the voice (a different model, a new
stability value, another output format) is a different key and a cache miss.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from voicekit.audio import AudioFormat

__all__ = ["PhraseKey", "normalize_phrase"]


def normalize_phrase(text: str) -> str:
    """``text`` with runs of whitespace collapsed: layout does not change what is said."""
    return " ".join(text.split())


@dataclass(frozen=True, slots=True)
class PhraseKey:
    provider: str
    voice: str  # canonical JSON of the provider's voice identity
    fmt: AudioFormat
    text: str

    @classmethod
    def of(cls, provider: str, voice: Mapping[str, Any], fmt: AudioFormat, text: str) -> PhraseKey:
        canonical = json.dumps(voice, sort_keys=True, separators=(",", ":"), default=str)
        return cls(provider, canonical, fmt, normalize_phrase(text))

    def describe(self) -> dict[str, Any]:
        """The key's parts as JSON-ready data (stored beside the audio, and checked)."""
        return {
            "provider": self.provider,
            "voice": self.voice,
            "format": [self.fmt.encoding, self.fmt.sample_rate, self.fmt.channels],
            "text": self.text,
        }

    @property
    def digest(self) -> str:
        blob = json.dumps(self.describe(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()
