"""The calls a server has accepted and not yet ended: what ``max_calls`` counts and what a
media token can open.

A call is *live* from the moment the server commits to it (it answers the webhook, or
dials) until it ends. Counting from that moment, not from when media connects, is what
makes ``max_calls`` a limit: ten calls ringing at once are ten calls, though none has
media yet.

Each live call admits exactly one media connection. A valid token is not enough: its call
must be live and not yet connected, so a token read from a log (or replayed by anyone who
saw it) opens nothing, neither a second session beside the real one nor a new one after
the call ended. A call whose media never connects (the caller hung up while it rang and
the webhook was lost) stops counting when its token could no longer be used anyway.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Admission", "LiveCalls"]

Refusal = Literal["unknown call", "call already connected", "call ended"]


@dataclass(slots=True)
class _Live:
    call_id: str
    accepted_at: float
    connected: bool = False


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of a media connection's claim: the call it may run, or why not."""

    call_id: str
    refusal: Refusal | None = None

    @property
    def admitted(self) -> bool:
        return self.refusal is None


ENDED_MEMORY = 10_000  # recently ended keys, to say "call ended" rather than "unknown"


class LiveCalls:
    """Live calls by key. The key is what the media token was signed for: the call id, or
    for a dialled call a dial id of our own until the provider's call id is known."""

    def __init__(
        self,
        max_calls: int,
        *,
        pending_ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_calls = max_calls
        self.pending_ttl_s = pending_ttl_s
        self._clock = clock
        self._calls: dict[str, _Live] = {}
        self._ended: dict[str, None] = {}

    def __len__(self) -> int:
        self._expire()
        return len(self._calls)

    def __contains__(self, key: str) -> bool:
        return key in self._calls

    def reserve(self, key: str) -> bool:
        """Count a call from now on; False when ``max_calls`` are already live.

        Reserving a key that is already live succeeds without counting it twice (a
        provider may send the same call's start event again).
        """
        if key in self._calls:
            return True
        self._expire()
        if len(self._calls) >= self.max_calls:
            return False
        self._calls[key] = _Live(key, self._clock())
        return True

    def identify(self, key: str, call_id: str) -> None:
        """The provider's id of a call reserved under ``key`` is now known (a dial)."""
        live = self._calls.get(key)
        if live is not None:
            live.call_id = call_id

    def admit(self, key: str) -> Admission:
        """Claim the one media connection of the call reserved under ``key``."""
        live = self._calls.get(key)
        if live is None:
            return Admission(key, "call ended" if key in self._ended else "unknown call")
        if live.connected:
            return Admission(live.call_id, "call already connected")
        live.connected = True
        return Admission(live.call_id)

    def end(self, call_id: str) -> bool:
        """Forget the call (by its call id or its key); True if it was live."""
        key = call_id if call_id in self._calls else self._key_of(call_id)
        if key is None:
            return False
        live = self._calls.pop(key)
        self._remember_ended(key)
        self._remember_ended(live.call_id)
        return True

    def ended(self, call_id: str) -> bool:
        """Whether the call (by its call id or its key) was live and has ended."""
        return call_id in self._ended and call_id not in self._calls

    def pending(self) -> list[str]:
        """Keys of live calls whose media has not connected."""
        return [key for key, live in self._calls.items() if not live.connected]

    def connected(self, call_id: str) -> bool:
        key = call_id if call_id in self._calls else self._key_of(call_id)
        return key is not None and self._calls[key].connected

    def _key_of(self, call_id: str) -> str | None:
        for key, live in self._calls.items():
            if live.call_id == call_id:
                return key
        return None

    def _remember_ended(self, key: str) -> None:
        self._ended[key] = None
        if len(self._ended) > ENDED_MEMORY:
            del self._ended[next(iter(self._ended))]

    def _expire(self) -> None:
        """Stop counting calls whose media never came and whose token has expired."""
        limit = self._clock() - self.pending_ttl_s
        stale = [k for k, c in self._calls.items() if not c.connected and c.accepted_at < limit]
        for key in stale:
            self._remember_ended(self._calls.pop(key).call_id)
            self._remember_ended(key)
