"""The phrase cache: known text plays from stored audio with no TTS round-trip."""

from voicekit.phrases.cache import CacheStats, PhraseCache, VoicePhrases, covers, phrase_cache
from voicekit.phrases.key import PhraseKey, normalize_phrase

__all__ = [
    "CacheStats",
    "PhraseCache",
    "PhraseKey",
    "VoicePhrases",
    "covers",
    "normalize_phrase",
    "phrase_cache",
]
