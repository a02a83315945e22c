"""The process's TLS contexts for provider connections, built once.

Building a context loads a whole CA bundle, 15-20 ms of CPU. Left to themselves,
websockets (through asyncio) builds one for every ``wss://`` connection and httpx one
for every client, so each call paid that for its STT socket before a word was said, on
the core that carries every other call's audio. An ``ssl.SSLContext`` is safe to share
between connections and tasks, with one catch: httpx sets its client's ALPN protocols on
the context it is given, on every connection. So there is one context per ALPN list, and
each user asks for the list it negotiates; a WebSocket negotiates none.

Certificates are checked against ``SSL_CERT_FILE`` when it is set, else the directory
``SSL_CERT_DIR`` when that is set, else certifi's bundle (httpx's rule, now the rule for
WebSockets too). The environment is read when a context is first asked for, and the
context then stays as it is for the life of the process.
"""

from __future__ import annotations

import functools
import os
import ssl

import httpx

from voicekit.errors import ConfigError

__all__ = ["HTTP1_ALPN", "HTTP2_ALPN", "client_tls"]

HTTP1_ALPN = ("http/1.1",)  # what an httpx client negotiates
HTTP2_ALPN = ("http/1.1", "h2")  # what an httpx client with http2=True negotiates


@functools.cache
def client_tls(alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    """The shared TLS context for connections that negotiate ``alpn``: none for a
    WebSocket, :data:`HTTP1_ALPN` for an httpx client (:data:`HTTP2_ALPN` with
    ``http2=True``). Every provider connection of the process may use it: never change
    it (``load_cert_chain``, ``check_hostname``, ...); build your own for that."""
    try:
        context = httpx.create_ssl_context()
    except (OSError, ssl.SSLError) as exc:
        names = [n for n in ("SSL_CERT_FILE", "SSL_CERT_DIR") if os.environ.get(n)]
        where = " or ".join(f"{n}={os.environ[n]!r}" for n in names) or "certifi's bundle"
        raise ConfigError(
            f"cannot load the CA certificates for TLS from {where}: {exc}; point the "
            "variable at a readable PEM bundle (a file) or directory, or unset it"
        ) from exc
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context
