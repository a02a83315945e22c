"""voicekit.testing.asgi as a third party uses it: apps that refuse, fail, never answer,
close either way, and have no lifespan; on both anyio backends."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import trio.testing
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

from voicekit.testing.asgi import asgi_lifespan, open_asgi_websocket

pytestmark = pytest.mark.anyio

URL = "ws://app.test/socket?x=1"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    if request.param == "trio":
        return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})
    return "asyncio"


def websocket_app(script: Any) -> Any:
    """A raw ASGI app that runs ``script(receive, send)`` after the connect event."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket" and scope["query_string"] == b"x=1"
        assert (await receive())["type"] == "websocket.connect"
        await script(receive, send)

    return app


async def accept_then(receive: Any, send: Any, *messages: dict[str, Any]) -> None:
    await send({"type": "websocket.accept"})
    for message in messages:
        await send(message)


async def test_an_app_that_closes_normally_ends_async_for_quietly() -> None:
    async def script(receive: Any, send: Any) -> None:
        await accept_then(receive, send, {"type": "websocket.send", "text": "hi"})
        await send({"type": "websocket.send", "bytes": b"\x00\x01"})
        await send({"type": "websocket.close", "code": 1000})
        assert (await receive())["type"] == "websocket.disconnect"  # the client's echo

    async with anyio.create_task_group() as tg:
        ws = await open_asgi_websocket(websocket_app(script), URL, start_soon=tg.start_soon)
        assert [m async for m in ws] == ["hi", b"\x00\x01"]
        assert ws.close_code == 1000
        with pytest.raises(ConnectionClosedOK) as closed:
            await ws.send("more")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


async def test_a_refusal_before_accepting_is_a_closed_connection_with_its_code() -> None:
    async def script(receive: Any, send: Any) -> None:
        await send({"type": "websocket.close", "code": 4003, "reason": "no"})

    async with anyio.create_task_group() as tg:
        with pytest.raises(ConnectionClosedError) as refused:
            await open_asgi_websocket(websocket_app(script), URL, start_soon=tg.start_soon)
    assert refused.value.rcvd is not None and refused.value.rcvd.code == 4003


async def test_an_app_that_fails_is_an_abnormal_closure_not_an_error_in_the_task_group() -> None:
    async def fails_at_once(receive: Any, send: Any) -> None:
        raise ValueError("bug before accepting")

    async def fails_later(receive: Any, send: Any) -> None:
        await accept_then(receive, send, {"type": "websocket.send", "text": "last words"})
        raise ValueError("bug after a message")

    async with anyio.create_task_group() as tg:
        with pytest.raises(ConnectionClosedError) as refused:
            await open_asgi_websocket(websocket_app(fails_at_once), URL, start_soon=tg.start_soon)
        assert refused.value.rcvd is None  # 1006: no closing handshake
        ws = await open_asgi_websocket(websocket_app(fails_later), URL, start_soon=tg.start_soon)
        received = []
        with pytest.raises(ConnectionClosedError):
            async for message in ws:  # an abnormal closure is not a quiet end
                received.append(message)
    assert received == ["last words"] and ws.close_code == 1006
    assert isinstance(ws.app_error, ValueError)


async def test_an_app_that_never_answers_times_out_with_a_reason() -> None:
    async def script(receive: Any, send: Any) -> None:
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        with pytest.raises(TimeoutError, match="neither accepted nor closed"):
            await open_asgi_websocket(
                websocket_app(script), URL, start_soon=tg.start_soon, open_timeout=0.5
            )
        tg.cancel_scope.cancel()


async def test_the_client_closing_is_a_disconnect_with_its_code() -> None:
    seen: list[dict[str, Any]] = []

    async def script(receive: Any, send: Any) -> None:
        await accept_then(receive, send)
        seen.append(await receive())
        seen.append(await receive())

    async with anyio.create_task_group() as tg:
        ws = await open_asgi_websocket(websocket_app(script), URL, start_soon=tg.start_soon)
        await ws.send(["pie", "ces"])  # an iterable's pieces make one message
        await ws.close(1001)
        await ws.close()  # twice is harmless
        with pytest.raises(ConnectionClosedOK):
            await ws.recv()
        with pytest.raises(TypeError):
            await ws.send({"not": "a message"})  # type: ignore[arg-type]
    assert seen == [
        {"type": "websocket.receive", "text": "pieces"},
        {"type": "websocket.disconnect", "code": 1001},
    ]


async def test_the_lifespan_runs_startup_then_shutdown_and_reports_a_failed_startup() -> None:
    events: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            events.append(message["type"])
            if message["type"] == "lifespan.startup":
                scope["state"]["ready"] = True
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    async with asgi_lifespan(app) as state:
        assert events == ["lifespan.startup"] and state == {"ready": True}
    assert events == ["lifespan.startup", "lifespan.shutdown"]

    async def failing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(RuntimeError, match="startup failed: no database"):
        async with asgi_lifespan(failing):
            pass


async def test_an_app_without_lifespan_support_runs_without_one() -> None:
    async def http_only(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"

    async def returns(scope: dict[str, Any], receive: Any, send: Any) -> None:
        return

    for app in (http_only, returns):
        async with asgi_lifespan(app) as state:
            assert state == {}
