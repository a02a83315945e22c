"""Signed, expiring media-stream tokens.

Telnyx connects to the media URL voicekit gave it when answering. The URL (and the
``stream_auth_token`` header) carries ``<call id>.<expiry>.<HMAC-SHA256>``, so only the
call it was issued for can stream, and only until it expires. A valid token is necessary,
not sufficient: :class:`~voicekit.server.live.LiveCalls` admits one connection per live
call, so a replayed token opens nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

__all__ = ["MediaTokens"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class MediaTokens:
    def __init__(self, secret: bytes | None = None, *, ttl_s: int = 300) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.ttl_s = ttl_s

    def _mac(self, subject: str, expiry: int) -> str:
        digest = hmac.new(self._secret, f"{subject}.{expiry}".encode(), hashlib.sha256)
        return _b64(digest.digest())

    def issue(self, subject: str, *, now: float | None = None) -> str:
        expiry = int((time.time() if now is None else now) + self.ttl_s)
        return f"{_b64(subject.encode())}.{expiry}.{self._mac(subject, expiry)}"

    def check(self, token: str | None, *, now: float | None = None) -> str | None:
        """The subject (call id) of a valid, unexpired token; None otherwise."""
        if not token or not token.isascii() or token.count(".") != 2:
            return None  # HMAC comparison of str needs ASCII: anything else is forged
        encoded, expiry_text, mac = token.split(".")
        try:
            subject = _unb64(encoded).decode()
            expiry = int(expiry_text)
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(mac, self._mac(subject, expiry)):
            return None
        if (time.time() if now is None else now) > expiry:
            return None
        return subject
