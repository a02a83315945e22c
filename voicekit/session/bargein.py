"""When a caller's words over the agent's speech count as an interruption.

Two rules: enough words (one "uh" is not an interruption), and not an echo of the agent's
own voice coming back through the caller's microphone or line.
"""

from __future__ import annotations

import re

__all__ = ["is_echo", "is_interruption", "words"]

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


def is_interruption(
    caller_text: str, agent_text: str, *, min_words: int, echo_filter: bool
) -> bool:
    if len(words(caller_text)) < min_words:
        return False
    return not (echo_filter and is_echo(caller_text, agent_text))
