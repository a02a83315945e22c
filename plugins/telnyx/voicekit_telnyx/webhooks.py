"""Telnyx webhook signature verification (PROTOCOLS.md §3c), before anything else.

The signed message is the UTF-8 bytes of ``f"{timestamp}|{raw_body}"``: the exact raw body,
never re-serialised JSON. Timestamps more than ``tolerance`` seconds away from now, in
either direction, are rejected, so a captured webhook cannot be replayed later and a
forged future one cannot be stockpiled.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from typing import NamedTuple

from voicekit.errors import VoiceKitError

__all__ = [
    "SignatureHeaders",
    "WebhookVerificationError",
    "decode_public_key",
    "signature_headers",
    "verify_signed_body",
    "verify_webhook",
]

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
_TIMESTAMP_DIGITS = 12  # Unix seconds stay under 13 digits until the year 33658


class WebhookVerificationError(VoiceKitError):
    """The webhook is not provably from Telnyx; answer 401 and process nothing."""


def decode_public_key(value: str) -> bytes:
    """The 32 raw bytes of a base64 Ed25519 public key, or a clear error."""
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the Telnyx public key is not valid base64") from None
    if len(key) != 32:
        raise WebhookVerificationError(
            f"the Telnyx public key must decode to 32 bytes, got {len(key)}"
        )
    return key


class SignatureHeaders(NamedTuple):
    """A webhook's signature headers, checked for shape and age; the body is not yet read."""

    timestamp: str
    signature: bytes


def signature_headers(
    headers: Mapping[str, str], *, tolerance: int = 300, now: float | None = None
) -> SignatureHeaders:
    """The signature headers of a request that may be from Telnyx, or the reason it is not.

    Everything that can be decided without the body is decided here, so a request with no
    signature, a malformed one or a stale timestamp is refused before its body is read.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    signature_b64 = lowered.get(SIGNATURE_HEADER)
    timestamp = lowered.get(TIMESTAMP_HEADER)
    if not signature_b64 or not timestamp:
        raise WebhookVerificationError("missing Telnyx signature or timestamp header")
    # Unix seconds, ASCII digits only: int() alone takes signs, underscores, spaces and
    # other scripts' digits, and a 400-digit number overflows the float arithmetic below.
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > _TIMESTAMP_DIGITS:
        raise WebhookVerificationError(
            f"the Telnyx timestamp must be Unix seconds, at most {_TIMESTAMP_DIGITS} digits"
        )
    signed_at = int(timestamp)
    current = time.time() if now is None else now
    skew = signed_at - current
    if abs(skew) > tolerance:
        when = "in the future" if skew > 0 else "in the past"
        raise WebhookVerificationError(
            f"the Telnyx timestamp is {abs(skew):.0f} s {when} (allowed: {tolerance} s either way)"
        )
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the Telnyx signature is not valid base64") from None
    if len(signature) != 64:
        raise WebhookVerificationError(
            f"the Telnyx signature must decode to 64 bytes, got {len(signature)}"
        )
    return SignatureHeaders(timestamp, signature)


def verify_signed_body(body: bytes, signed: SignatureHeaders, public_key: bytes) -> None:
    """Raise :class:`WebhookVerificationError` unless ``signed`` is ``public_key``'s
    signature of ``body`` at its timestamp."""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    if len(public_key) != 32:
        raise WebhookVerificationError("the Telnyx public key must be 32 bytes")
    try:
        VerifyKey(public_key).verify(f"{signed.timestamp}|".encode() + body, signed.signature)
    except BadSignatureError:
        raise WebhookVerificationError("the Telnyx signature does not match the body") from None


def verify_webhook(
    body: bytes,
    headers: Mapping[str, str],
    public_key: bytes,
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> None:
    """Raise :class:`WebhookVerificationError` unless ``body`` was signed by ``public_key``
    (:func:`signature_headers`, then :func:`verify_signed_body`)."""
    verify_signed_body(body, signature_headers(headers, tolerance=tolerance, now=now), public_key)
