"""Cut a streaming LLM reply into speakable pieces as the tokens arrive.

The first piece goes out at the first clause boundary once it is long enough (the
first-clause fast path: "Sure, let me check that for you," starts speaking before the
sentence is done); after that, whole sentences; a sentence longer than ``max_chars`` is
cut at its last clause boundary, or failing that at a space.

Every decision depends only on the text, never on how it was chunked: the scanner walks
the text one character at a time and, when a decision needs a character that has not
arrived yet (is "3." followed by "50" or by " "?), it stops and waits for it. Feeding a
reply whole or one character at a time therefore gives identical output. The wait is at
most the next token, which usually carries the space after a full stop.
"""

from __future__ import annotations

import re

from voicekit.text.cleanup import clean_segment

__all__ = ["SentenceSegmenter"]

_SENTENCE_END = ".!?…"
_CLAUSE_END = ",;:—–"
_CLOSERS = "\"'”’)]}»"
# Abbreviations that never end a sentence: a capitalised word after them is a name.
_NEVER_END = {
    "mr", "mrs", "ms", "dr", "st", "prof", "sgt", "capt", "gen", "rev", "hon", "mt", "ft",
    "e.g", "i.e", "vs", "no", "approx", "dept", "est", "fig", "tel", "ave", "blvd", "apt",
}  # fmt: skip
# Abbreviations that may end a sentence: they do when an upper-case letter follows.
_MAY_END = {
    "etc", "a.m", "p.m", "u.s", "u.k", "u.s.a", "e.u", "inc", "ltd", "co", "corp", "jr",
    "sr", "llc", "ph.d", "al",
}  # fmt: skip
_NUMBER = re.compile(r"[#(]?\d+")
# What a boundary check returns besides the end index of a boundary.
_NOT_A_BOUNDARY = -1
_NEED_MORE_TEXT = -2


class SentenceSegmenter:
    """Streaming segmenter: ``push(delta) -> list[str]``, ``flush() -> list[str]``.

    Pure and synchronous: no I/O, no clock, no downloads. One instance per reply.
    """

    def __init__(self, *, first_clause_min_chars: int = 10, max_chars: int = 220) -> None:
        if first_clause_min_chars < 1 or max_chars < 20:
            raise ValueError("first_clause_min_chars must be >= 1 and max_chars >= 20")
        self.first_clause_min_chars = first_clause_min_chars
        self.max_chars = max_chars
        self._buf = ""
        self._pos = 0
        self._in_tag = False
        self._emitted = False
        self._last_clause = 0  # end index of the last clause boundary in the buffer
        self._last_space = 0

    def push(self, delta: str) -> list[str]:
        """Add LLM text; return the pieces that are now complete."""
        if not delta:
            return []
        self._buf += delta
        return self._scan(final=False)

    def flush(self) -> list[str]:
        """End of the reply: return everything still held, as the last pieces."""
        out = self._scan(final=True)
        self._emit(len(self._buf), out)
        self._in_tag = False
        return out

    # -- scanning ---------------------------------------------------------------------

    def _scan(self, *, final: bool) -> list[str]:
        out: list[str] = []
        while self._pos < len(self._buf):
            i = self._pos
            c = self._buf[i]
            if self._in_tag:
                if c == ">":
                    self._in_tag = False
                self._pos += 1
                continue
            if c == "<":
                if i + 1 >= len(self._buf) and not final:
                    break
                nxt = self._buf[i + 1] if i + 1 < len(self._buf) else ""
                if nxt.isalpha() or nxt in "/!?":
                    self._in_tag = True
                    self._pos += 1
                    continue
            if c == "\n":
                self._emit(i + 1, out)
                continue
            end = _NOT_A_BOUNDARY
            if c in _SENTENCE_END:
                end = self._sentence_end(i, final)
            elif c in _CLAUSE_END:
                end = self._clause_end(i, final)
                if end >= 0:
                    self._last_clause = end
                    if self._emitted or not self._long_enough(end):
                        end = _NOT_A_BOUNDARY
            if end == _NEED_MORE_TEXT:
                break
            if end >= 0:
                self._emit(end, out)
                continue
            if c.isspace():
                self._last_space = i
            self._pos += 1
            if self._pos >= self.max_chars and not self._in_tag:
                cut = self._last_clause or self._last_space
                if cut > 0:
                    self._emit(cut, out)
        return out

    def _long_enough(self, end: int) -> bool:
        return len(clean_segment(self._buf[:end])) >= self.first_clause_min_chars

    def _after_closers(self, i: int) -> int:
        j = i + 1
        while j < len(self._buf) and self._buf[j] in _CLOSERS:
            j += 1
        return j

    def _clause_end(self, i: int, final: bool) -> int:
        """A comma, semicolon, colon or dash ends a clause when whitespace follows."""
        j = self._after_closers(i)
        if j >= len(self._buf):
            return j if final else _NEED_MORE_TEXT
        return j if self._buf[j].isspace() else _NOT_A_BOUNDARY

    def _sentence_end(self, i: int, final: bool) -> int:
        """End index of the sentence closed by the mark at ``i``, or a sentinel."""
        buf = self._buf
        c = buf[i]
        if i + 1 < len(buf) and buf[i + 1] in _SENTENCE_END:
            return _NOT_A_BOUNDARY  # "?!" or "..": the last mark decides
        if i + 1 >= len(buf) and not final:
            return _NEED_MORE_TEXT
        ellipsis = c == "…" or buf[max(0, i - 2) : i + 1] == "..."
        word = self._word_before(i)
        needs_capital = ellipsis
        if c == "." and not ellipsis:
            lowered = word.lower().rstrip(".")
            if lowered in _NEVER_END or (len(word) == 1 and word.isalpha()):
                return _NOT_A_BOUNDARY
            if lowered in _MAY_END or "." in word:
                needs_capital = True
            elif _NUMBER.fullmatch(word) and not buf[: i - len(word)].strip():
                return _NOT_A_BOUNDARY  # "1. " opening a numbered item is not a sentence
        j = self._after_closers(i)
        if j >= len(buf):
            return j if final else _NEED_MORE_TEXT
        if not buf[j].isspace():
            return _NOT_A_BOUNDARY  # "3.50", "example.com", "e.g": not a boundary
        if j > i + 1:
            needs_capital = True  # 'He asked "Why?" and left.': quoted, the sentence goes on
        if not needs_capital:
            return j
        k = j
        while k < len(buf) and buf[k].isspace():
            k += 1
        if k >= len(buf):
            return j if final else _NEED_MORE_TEXT
        return j if buf[k].isupper() else _NOT_A_BOUNDARY

    def _word_before(self, i: int) -> str:
        start = i
        while start > 0 and not self._buf[start - 1].isspace():
            start -= 1
        return self._buf[start:i].lstrip("\"'“‘([{*_")

    def _emit(self, end: int, out: list[str]) -> None:
        piece = clean_segment(self._buf[:end])
        if piece:
            out.append(piece)
            self._emitted = True
        self._buf = self._buf[end:]
        self._pos = 0
        self._last_clause = 0
        self._last_space = 0
