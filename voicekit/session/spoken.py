"""What one utterance says, and when: the map from played audio to the words heard.

With TTS alignment every character has a start and end in the utterance's audio, so the
words heard are exactly those whose last character had finished playing. Without
alignment the split is estimated from the played duration.
"""

from __future__ import annotations

__all__ = ["SpokenText"]

# Speaking rate assumed when neither alignment nor the full audio length is known.
DEFAULT_CHARS_PER_SECOND = 15.0


class SpokenText:
    def __init__(self) -> None:
        self.text = ""  # all text given to the TTS
        self.audio_ms = 0.0  # audio received so far
        self.complete = False  # all audio received
        self._chars: list[tuple[str, float, float]] = []  # (char, start_ms, end_ms)
        self.aligned = False

    def add_text(self, text: str) -> None:
        self.text += text

    def add_audio(
        self,
        duration_ms: float,
        chars: tuple[str, ...] = (),
        starts: tuple[int, ...] = (),
        durations: tuple[int, ...] = (),
    ) -> list[float]:
        """Record a chunk; returns the end times (ms in the utterance) of words it ends."""
        ends: list[float] = []
        base = self.audio_ms
        for ch, start, dur in zip(chars, starts, durations, strict=False):
            if ch.isspace() and self._chars and not self._chars[-1][0].isspace():
                ends.append(self._chars[-1][2])
            self._chars.append((ch, base + start, base + start + dur))
        if chars:
            self.aligned = True
        self.audio_ms += duration_ms
        return ends

    def heard(self, heard_ms: float) -> str:
        """The whole words the caller has heard when ``heard_ms`` of audio has played."""
        if self.complete and heard_ms >= self.audio_ms:
            return self.text.strip()
        if self.aligned:
            text = ""
            for ch, _, end in self._chars:
                if end > heard_ms:
                    # Keep only whole words: drop a word still being spoken.
                    if not ch.isspace() and text and not text[-1].isspace():
                        text = text[: max(text.rfind(" "), 0)]
                    break
                text += ch
            else:
                return "".join(c for c, _, _ in self._chars).strip()
            return text.strip()
        if self.complete and self.audio_ms > 0:
            n = int(len(self.text) * heard_ms / self.audio_ms)
        else:
            n = int(heard_ms / 1000 * DEFAULT_CHARS_PER_SECOND)
        if n >= len(self.text):
            return self.text.strip()
        cut = self.text[:n]
        if n < len(self.text) and not self.text[n].isspace():
            cut = cut[: max(cut.rfind(" "), 0)]
        return cut.strip()
