"""Keep secrets out of every log line, whoever writes it and at any verbosity.

voicekit itself never logs a secret, but the libraries under it do at debug level:
``websockets.client`` prints the handshake headers (``Authorization: Bearer …``,
``xi-api-key: …``), uvicorn's access log prints the media URL with its token, and an
exception message can quote a URL. Filtering one logger or one handler misses the others,
so :func:`install` wraps the process's log-record factory: every record is redacted as it
is created, before any handler, formatter or test fixture sees it.

Two kinds of redaction:

- **known values**: every secret voicekit was configured with (API keys, the media auth
  secret) is registered with :func:`register_secret` and replaced wherever it appears;
- **shapes**: credential headers and query parameters, and voicekit's media tokens, are
  replaced whatever their value, so a key voicekit was never told about (a variable a
  library reads itself) is caught too.

Only records that are actually emitted are touched (the logger's level check comes
first), so the cost at normal verbosity is a few regular-expression scans per line.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["REDACTED", "install", "redact", "register_secret", "register_secrets"]

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words; no real key is this short

_HEADER_NAMES = (
    r"authorization|proxy-authorization|xi-api-key|xi_api_key|x-api-key|api-key|api_key"
    r"|x-telnyx-streaming-auth-token|stream_auth_token|cookie|set-cookie"
)
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # "Authorization: Bearer abc", "xi-api-key: abc" (handshake and HTTP debug logs)
    (
        re.compile(rf"(?i)\b({_HEADER_NAMES})(\s*:\s*)((?:bearer|token|basic)\s+)?[^\s,;'\"]+"),
        rf"\1\2\3{REDACTED}",
    ),
    # JSON or repr: "api_key": "abc", 'xi-api-key': 'abc'
    (
        re.compile(
            rf"(?i)([\"']({_HEADER_NAMES}|token|secret|password)[\"']\s*[:,]\s*[\"'])[^\"']*"
        ),
        rf"\1{REDACTED}",
    ),
    # query strings: ?token=abc&… , &api_key=abc
    (
        re.compile(
            r"(?i)([?&;](?:token|api_key|key|authorization|auth|xi_api_key|secret)=)[^&\s'\"]*"
        ),
        rf"\1{REDACTED}",
    ),
    # a password in a URL: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@]*:)[^\s/@]+@"), rf"\1{REDACTED}@"),
    # voicekit media tokens anywhere: <base64url subject>.<unix expiry>.<base64url HMAC>
    (re.compile(r"[A-Za-z0-9_-]{2,}\.\d{9,12}\.[A-Za-z0-9_-]{43}"), REDACTED),
)

_lock = threading.Lock()
_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None
_installed: Callable[..., logging.LogRecord] | None = None


def register_secret(value: str | None) -> None:
    """Redact ``value`` wherever it appears in a log line from now on."""
    global _secret_pattern
    if not value or len(value) < MIN_SECRET_LENGTH or value in _secrets:
        return
    with _lock:
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)  # longest first: no partial leaks
        _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def register_secrets(values: Iterable[str | None]) -> None:
    for value in values:
        register_secret(value)


def redact(text: str) -> str:
    """``text`` with every registered secret and every credential shape replaced."""
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for shape, replacement in _SHAPES:
        text = shape.sub(replacement, text)
    return text


# Control characters in values from the network: line breaks would forge a log line (and
# NEL, VT, FF, U+2028/9 count as line breaks to str.splitlines and to some viewers), and
# ESC sequences would drive the terminal of whoever tails the log. Tab is left alone.
_CONTROLS = str.maketrans(
    {
        **{c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if c != 0x09},
        0x0A: "\\n",
        0x0D: "\\r",
        0x2028: "\\u2028",
        0x2029: "\\u2029",
    }
)


def _redact_arg(value: Any) -> Any:
    """One format argument, redacted; numbers and clean values are left as they are, so
    formatters that read ``record.args`` (uvicorn's access log) keep working. Line breaks
    and other control characters in arguments (values from the network) are escaped: no
    one forges a log line or sends the reader's terminal an escape sequence."""
    if isinstance(value, str):
        return redact(value).translate(_CONTROLS)
    if value is None or isinstance(value, int | float | bool | bytes):
        return value
    text = str(value)
    clean = redact(text).translate(_CONTROLS)
    return value if clean == text else clean


def _redact_record(record: logging.LogRecord) -> None:
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    args = record.args
    if isinstance(args, tuple):
        record.args = tuple(_redact_arg(a) for a in args)
    elif isinstance(args, dict):
        record.args = {k: _redact_arg(v) for k, v in args.items()}
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def install() -> None:
    """Redact every log record this process creates from now on (idempotent)."""
    global _installed
    with _lock:
        if _installed is not None:
            return
        inner = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = inner(*args, **kwargs)
            _redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = factory
