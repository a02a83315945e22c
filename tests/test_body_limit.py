"""``BodyLimit`` as any ASGI route meets it: the limit is counted as the route reads, so a
route may answer from its headers alone, and one that reads too much sees the body end."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from voicekit.server.limits import BodyLimit

pytestmark = pytest.mark.anyio

LIMIT = 100


async def call(
    app: Any,
    pieces: list[bytes],
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    complete: bool = True,
) -> tuple[list[dict[str, Any]], int]:
    """Run ``app`` behind a 100-byte limit on a body sent in ``pieces``; return what it
    sent and how many pieces it was given. Incomplete: the client leaves after them."""
    scope = {"type": "http", "method": "POST", "path": "/hook", "headers": headers or []}
    queue = [
        {"type": "http.request", "body": p, "more_body": i < len(pieces) - 1 or not complete}
        for i, p in enumerate(pieces)
    ]
    given = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal given
        if given < len(queue):
            given += 1
            return queue[given - 1]
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await BodyLimit(app, LIMIT)(scope, receive, send)
    return sent, given


def status(sent: list[dict[str, Any]]) -> int:
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent
    return int(starts[0]["status"])


async def test_a_route_may_answer_from_its_headers_without_reading_the_body() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await JSONResponse({"error": "no"}, status_code=401)(scope, receive, send)

    sent, given = await call(app, [b"x" * 60, b"x" * 60, b"x" * 60])
    assert status(sent) == 401 and given == 0  # not a byte of the body was read


async def test_a_body_within_the_limit_reaches_the_route_whole() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = await Request(scope, receive).body()
        await JSONResponse({"len": len(body)})(scope, receive, send)

    sent, _ = await call(app, [b"x" * 50, b"x" * 50])
    assert status(sent) == 200 and b'{"len":100}' in sent[-1]["body"]


async def test_a_route_reading_past_the_limit_gets_413_and_the_body_ends() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        await JSONResponse({"ok": True})(scope, receive, send)  # too late: dropped

    sent, given = await call(app, [b"x" * 60, b"x" * 60, b"x" * 60])
    assert status(sent) == 413 and given == 2  # the third piece was never read
    assert seen == ["http.request", "http.disconnect"]
    assert dict(sent[0]["headers"])[b"connection"] == b"close"


async def test_starlettes_disconnect_after_a_refusal_is_not_an_app_error() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await Request(scope, receive).body()  # raises ClientDisconnect at the limit

    sent, _ = await call(app, [b"x" * 60, b"x" * 60])
    assert status(sent) == 413


async def test_a_client_leaving_mid_body_is_not_an_app_error() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await Request(scope, receive).body()

    # More was promised (more_body) and then the connection went: the route's
    # ClientDisconnect is nobody's error, and nothing is answered.
    sent, given = await call(app, [b"x" * 10, b"x" * 10], complete=False)
    assert sent == [] and given == 2  # both pieces read, then the disconnect


async def test_other_route_errors_still_propagate() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("a bug in the route")

    with pytest.raises(ValueError, match="a bug in the route"):
        await call(app, [b"x"])


async def test_a_declared_length_over_the_limit_is_refused_before_the_route() -> None:
    called = False

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal called
        called = True

    sent, given = await call(app, [b"x" * 200], headers=[(b"content-length", b"200")])
    assert status(sent) == 413 and not called and given == 0
