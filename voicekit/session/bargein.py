"""When a caller's words over the agent's speech count as an interruption.

Three rules: enough words (one "uh" is not an interruption), not only backchannel words
("uh-huh", "yeah okay": a listener's signals, not a turn), and not an echo of the agent's
own voice coming back through the caller's microphone or line.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

__all__ = ["is_backchannel", "is_echo", "is_interruption", "words"]

_WORD = re.compile(r"[\w']+")


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def is_echo(caller_text: str, agent_text: str) -> bool:
    """True when the caller's words are a run of the agent's recent words."""
    said = words(caller_text)
    if not said:
        return False
    spoken = words(agent_text)
    n = len(said)
    return any(spoken[i : i + n] == said for i in range(len(spoken) - n + 1))


@functools.lru_cache(maxsize=8)
def _phrase_words(phrases: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """The phrases as word tuples, longest first (built once per list: every partial
    transcript over the agent is checked)."""
    split = {tuple(words(p.replace("-", " "))) for p in phrases if p.strip()}
    return tuple(sorted(split, key=len, reverse=True))


def is_backchannel(caller_text: str, phrases: Sequence[str]) -> bool:
    """True when ``caller_text`` is made only of backchannel ``phrases`` ("uh huh yeah")."""
    said = words(caller_text.replace("-", " "))
    known = _phrase_words(tuple(phrases))
    if not said or not known:
        return False
    at = 0
    while at < len(said):
        match = next((p for p in known if tuple(said[at : at + len(p)]) == p), None)
        if match is None:
            return False
        at += len(match)
    return True


def is_interruption(
    caller_text: str,
    agent_text: str,
    *,
    min_words: int,
    echo_filter: bool,
    backchannels: Sequence[str] = (),
) -> bool:
    if len(words(caller_text)) < min_words:
        return False
    if is_backchannel(caller_text, backchannels):
        return False
    return not (echo_filter and is_echo(caller_text, agent_text))
