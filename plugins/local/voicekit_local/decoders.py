"""pocketsphinx decoders, reused across calls.

A decoder holds the acoustic model, the dictionary and the language model (about 90 MB,
a quarter of a second to load), and its search state belongs to one stream at a time.
Loading one per call would put that quarter second in front of every call, so finished
calls hand theirs back and the next call takes it. Blocking: use from worker threads.
"""

from __future__ import annotations

import logging
import threading

from voicekit_local.sphinx import SphinxDecoder

__all__ = ["acquire", "release"]

logger = logging.getLogger(__name__)

MAX_IDLE = 8  # decoders kept for reuse; more are released when their calls end

_idle: list[SphinxDecoder] = []
_lock = threading.Lock()


def _new() -> SphinxDecoder:
    return SphinxDecoder()


def acquire() -> SphinxDecoder:
    """A decoder ready for ``start_utt``: a reused one, or a new one."""
    with _lock:
        if _idle:
            return _idle.pop()
    return _new()


def release(decoder: SphinxDecoder) -> None:
    """Give back a decoder whose utterance has ended."""
    with _lock:
        if len(_idle) < MAX_IDLE:
            _idle.append(decoder)
