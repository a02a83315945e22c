"""One TLS client context per process, shared by every provider connection.

Building a context loads a whole CA bundle, 15-20 ms of CPU. Left to themselves,
websockets (through asyncio) builds one for every ``wss://`` connection and httpx one
for every client, so each call paid that for its STT socket before a word was said, on
the core that carries every other call's audio. An ``ssl.SSLContext`` is safe to share
between connections and tasks.

Certificates are checked against certifi's bundle, or ``SSL_CERT_FILE`` /
``SSL_CERT_DIR`` when set (httpx's rule, now the rule for WebSockets too), read once
when the first connection needs them.
"""

from __future__ import annotations

import functools
import ssl

import httpx

__all__ = ["client_tls"]


@functools.cache
def client_tls() -> ssl.SSLContext:
    """The process's TLS context for connections to providers and webhooks."""
    return httpx.create_ssl_context()
