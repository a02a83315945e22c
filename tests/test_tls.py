"""Provider connections share one TLS context, and it still checks certificates.

The loopback server presents tests/data/loopback-cert.pem, a self-signed certificate for
127.0.0.1 made for these tests (its key is next to it and protects nothing).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

import voicekit.tls
from voicekit.errors import ConfigError, ProviderError
from voicekit.retry import RetryPolicy
from voicekit.tls import HTTP1_ALPN, HTTP2_ALPN, client_tls
from voicekit.websocket import close_websocket, connect_websocket

pytestmark = pytest.mark.anyio

DATA = Path(__file__).parent / "data"
CERT = DATA / "loopback-cert.pem"


@pytest.fixture
def fresh_tls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """client_tls() rebuilt for this test (and the process's one restored after), with a
    count of how often a context is built."""
    built: list[int] = []
    create = httpx.create_ssl_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(1)
        return create(*args, **kwargs)

    monkeypatch.setattr(voicekit.tls.httpx, "create_ssl_context", counting)
    client_tls.cache_clear()
    yield built
    client_tls.cache_clear()


async def echo(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


def server_tls() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERT, DATA / "loopback-key.pem")
    context.set_alpn_protocols(["h2", "http/1.1"])  # as an HTTP/2-capable provider does
    return context


async def connect(port: int, scheme: str = "wss") -> Any:
    return await connect_websocket(
        f"{scheme}://127.0.0.1:{port}",
        {},
        provider="test",
        label="the test server",
        key_env="TEST_KEY",
        open_timeout_s=5,
        policy=RetryPolicy(attempts=1),
    )


async def test_wss_connections_share_one_context_that_trusts_ssl_cert_file(
    fresh_tls: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(CERT))
    async with websockets.serve(echo, "127.0.0.1", 0, ssl=server_tls()) as server:
        port = server.sockets[0].getsockname()[1]
        for _ in range(3):
            ws = await connect(port)
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await close_websocket(ws, 1.0)
    assert len(fresh_tls) == 1
    context = client_tls()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


async def test_a_certificate_nobody_vouches_for_is_refused(
    fresh_tls: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    async with websockets.serve(echo, "127.0.0.1", 0, ssl=server_tls()) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ProviderError, match="the test server"):
            await connect(port)


async def test_plain_ws_needs_no_context(fresh_tls: list[int]) -> None:
    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        await close_websocket(await connect(port, "ws"), 1.0)
    assert fresh_tls == []


async def test_an_http_client_does_not_change_what_a_websocket_negotiates(
    fresh_tls: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx sets its ALPN list on the context it is given, at every connection: an
    HTTP/2 client sharing the WebSocket's context made every later wss:// handshake
    negotiate h2 and fail."""
    monkeypatch.setenv("SSL_CERT_FILE", str(CERT))
    async with websockets.serve(echo, "127.0.0.1", 0, ssl=server_tls()) as server:
        port = server.sockets[0].getsockname()[1]
        for alpn in (HTTP1_ALPN, HTTP2_ALPN):
            async with httpx.AsyncClient(verify=client_tls(alpn)) as client:
                response = await client.get(f"https://127.0.0.1:{port}/")
                assert response.status_code == 426  # websockets asks for an upgrade
            ws = await connect(port)
            assert ws.transport.get_extra_info("ssl_object").selected_alpn_protocol() is None
            await ws.send("still a WebSocket")
            assert await ws.recv() == "still a WebSocket"
            await close_websocket(ws, 1.0)
    assert len({id(client_tls()), id(client_tls(HTTP1_ALPN)), id(client_tls(HTTP2_ALPN))}) == 3


def test_a_bundle_that_cannot_be_read_names_the_variable(
    fresh_tls: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-bundle.pem"
    monkeypatch.setenv("SSL_CERT_FILE", str(missing))
    with pytest.raises(ConfigError, match=r"SSL_CERT_FILE='.*no-such-bundle\.pem'"):
        client_tls()


async def test_the_scheme_is_read_as_websockets_reads_it(
    fresh_tls: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(CERT))
    async with websockets.serve(echo, "127.0.0.1", 0, ssl=server_tls()) as server:
        port = server.sockets[0].getsockname()[1]
        await close_websocket(await connect(port, "WSS"), 1.0)
    assert len(fresh_tls) == 1


def test_the_llm_sdks_use_the_shared_context_instead_of_building_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The openai and anthropic SDKs build a TLS context (a whole CA bundle) for every
    client they are not given one for; the plugins give them the process's."""
    from voicekit_anthropic import AnthropicLLM, AnthropicSettings
    from voicekit_openai import OpenAILLM, OpenAISettings

    client_tls(HTTP1_ALPN)  # built once for the process, before counting
    built: list[int] = []
    create = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(1)
        return create(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    openai_llm = OpenAILLM(OpenAISettings.model_validate({"api_key": "sk-test"}))
    anthropic_llm = AnthropicLLM(AnthropicSettings.model_validate({"api_key": "sk-test"}))
    assert openai_llm.client is not None and anthropic_llm.client is not None
    assert built == []
