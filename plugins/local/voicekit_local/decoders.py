"""pocketsphinx decoders, reused across calls.

A decoder holds the acoustic model, the dictionary and the language model (about 90 MB,
a quarter of a second to load), and its search state belongs to one stream at a time.
Loading one per call would put that quarter second in front of every call, so finished
calls hand theirs back and the next call takes it. Blocking: use from worker threads.
"""

from __future__ import annotations

import logging
import threading

from voicekit.errors import ProviderUnavailable
from voicekit_local.sphinx import SphinxDecoder

__all__ = ["acquire", "release"]

logger = logging.getLogger(__name__)

MAX_IDLE = 8  # decoders kept for reuse; more are released when their calls end

_idle: list[SphinxDecoder] = []
_lock = threading.Lock()
_in_use = 0


def acquire(limit: int) -> SphinxDecoder:
    """A decoder ready for ``start_utt``: a reused one, or a new one; ProviderUnavailable
    when ``limit`` decoders are already in use."""
    global _in_use
    with _lock:
        if _in_use >= limit:
            raise ProviderUnavailable(
                f"the local STT already serves {limit} streams ([providers.local.stt] "
                "max_streams); a call beyond that would slow every call",
                provider="local",
            )
        _in_use += 1
        if _idle:
            return _idle.pop()
    try:
        return SphinxDecoder()
    except BaseException:
        with _lock:
            _in_use -= 1
        raise


def release(decoder: SphinxDecoder) -> None:
    """Give back a decoder whose utterance has ended."""
    global _in_use
    with _lock:
        _in_use -= 1
        if len(_idle) < MAX_IDLE:
            _idle.append(decoder)
            return
    decoder.close()
