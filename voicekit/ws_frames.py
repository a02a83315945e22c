"""WebSocket frames built by voicekit itself (RFC 6455, 5.2), for the two hot paths that
skip websockets' general framing: audio to a provider (client frames, masked) and media
messages to the phone line (server frames). Both only ever send a whole, final,
uncompressed data frame; everything else goes through websockets.
"""

from __future__ import annotations

import os
import struct

try:  # websockets' C helper, as its own framing uses
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover  (a build without the C extension)
    from websockets.utils import apply_mask

__all__ = ["apply_mask", "client_frame", "server_frame"]

_SHORT = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


def _header(opcode: int, size: int, mask_bit: int) -> bytes:
    """FIN and ``opcode``, then the payload length in the shortest of its three forms."""
    if size < 126:
        return bytes((0x80 | opcode, mask_bit | size))
    if size < 0x10000:
        return _SHORT.pack(0x80 | opcode, mask_bit | 126, size)
    return _LONG.pack(0x80 | opcode, mask_bit | 127, size)


class _Masks:
    """Masking keys for client frames, cut from one read of the system's random source
    per ``count`` frames: RFC 6455 asks for unpredictable keys, not for a system call
    per frame (websockets makes one for each)."""

    def __init__(self, count: int = 1024) -> None:
        self.count = count
        self.reset()

    def reset(self) -> None:
        """Forget the keys drawn so far (a forked child must not reuse its parent's)."""
        self._pool = b""
        self._at = 0

    def next(self) -> bytes:
        at = self._at
        if at >= len(self._pool):
            self._pool, at = os.urandom(4 * self.count), 0
        self._at = at + 4
        return self._pool[at : at + 4]


_masks = _Masks()
if hasattr(os, "register_at_fork"):  # POSIX only; Windows has no fork
    os.register_at_fork(after_in_child=_masks.reset)


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame of ``payload`` (0x1 text, 0x2 binary)."""
    mask = _masks.next()
    return _header(opcode, len(payload), 0x80) + mask + apply_mask(payload, mask)


def server_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked server frame of ``payload`` (0x1 text, 0x2 binary)."""
    return _header(opcode, len(payload), 0) + payload
