"""``PersistentWebSocket`` as a third-party plugin uses it (docs/plugins.md, "Helpers for
streaming providers"): only the public hooks and methods, against a loopback server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import anyio
import pytest
import websockets

from tests.session_helpers import until
from voicekit.errors import ProviderAuthError
from voicekit.retry import RetryPolicy
from voicekit.streaming import PersistentWebSocket

pytestmark = pytest.mark.anyio


class Wire:
    """A provider's side: every text message of every connection, in order; the test
    drops the current connection with ``drop()``."""

    def __init__(self) -> None:
        self.connections: list[list[str]] = []
        self._current: Any = None

    async def handler(self, ws: Any) -> None:
        received: list[str] = []
        self.connections.append(received)
        self._current = ws
        with contextlib.suppress(websockets.ConnectionClosed):  # the test's own drop
            async for message in ws:
                received.append(message)

    async def drop(self) -> None:
        await self._current.close(1011, "dropped by the test")


@asynccontextmanager
async def wire_server() -> AsyncIterator[tuple[Wire, str]]:
    wire = Wire()
    async with websockets.serve(wire.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield wire, f"ws://127.0.0.1:{port}/"


class TextStream(PersistentWebSocket):
    """Words to the provider; a reconnect re-sends every word (a provider that forgot
    them), after a pause that leaves room for a concurrent ``say``."""

    provider: ClassVar[str] = "acme"
    label: ClassVar[str] = "Acme"
    key_env: ClassVar[str] = "ACME_API_KEY"

    def __init__(self, url: str, *, replay_pause_s: float = 0.0) -> None:
        super().__init__(call_id="c1", open_timeout_s=2.0, keepalive_interval_s=None)
        self._url = url
        self.replay_pause_s = replay_pause_s
        self.owed: list[str] = []
        self.replaying = anyio.Event()

    def url(self) -> str:
        return self._url

    async def on_connected(self) -> None:
        assert await self.send_locked("config")

    async def on_reconnect(self) -> None:
        self.replaying.set()
        await anyio.sleep(self.replay_pause_s)
        for word in self.owed:
            await self.send_locked(word)

    def on_message(self, raw: str | bytes) -> None:
        pass

    async def say(self, word: str) -> None:
        async with self.locked():
            self.owed.append(word)
            await self.send_locked(word)


async def test_the_first_message_of_every_connection_is_sent_from_on_connected() -> None:
    async with wire_server() as (wire, url), TextStream(url) as stream:
        await stream.say("hello")
        await until(lambda: wire.connections[0] == ["config", "hello"], 5.0)
        await wire.drop()
        await until(lambda: len(wire.connections) == 2 and stream.connected, 5.0)
        await stream.say("again")
        await until(lambda: wire.connections[1] == ["config", "hello", "again"], 5.0)
    assert stream.reconnects == 1


async def test_a_word_said_during_a_replay_reaches_the_provider_once() -> None:
    """Recorded and sent under ``locked()``, a word said while a reconnect replays goes
    out after the replay, not in it and again after it."""
    async with wire_server() as (wire, url), TextStream(url, replay_pause_s=0.2) as stream:
        await stream.say("one")
        await until(lambda: wire.connections[0] == ["config", "one"], 5.0)
        await wire.drop()
        await stream.replaying.wait()
        await stream.say("two")  # waits for the replay, which is still pausing
        await stream.say("three")  # in order after any second "two"
        await until(
            lambda: len(wire.connections) == 2 and wire.connections[1][-1:] == ["three"], 5.0
        )
    assert wire.connections[1] == ["config", "one", "two", "three"]


def test_a_hook_declared_the_wrong_way_fails_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match=r"Async\.on_message must be a plain def"):

        class Async(PersistentWebSocket):
            async def on_message(self, raw: str | bytes) -> None:  # type: ignore[override]
                pass

    with pytest.raises(TypeError, match=r"Plain\.on_connected must be async def"):

        class Plain(PersistentWebSocket):
            def on_connected(self) -> None:  # type: ignore[override]
                pass

    class Static(PersistentWebSocket):
        @staticmethod
        def keepalive_message() -> str:
            return "{}"

    assert Static.keepalive_message() == "{}"


async def test_a_refused_key_names_the_variable_and_the_status_once() -> None:
    async def refuse(connection: Any, request: Any) -> Any:
        return connection.respond(401, "invalid key acme-secret-123\n")

    async with websockets.serve(lambda ws: None, "127.0.0.1", 0, process_request=refuse) as srv:
        url = f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/"
        stream = TextStream(url)
        stream.policy = RetryPolicy(attempts=3)
        with pytest.raises(ProviderAuthError) as caught:
            await stream.__aenter__()
        await stream.aclose()
    message = str(caught.value)
    assert message.endswith(
        "Acme refused the connection (HTTP 401): the key was refused; check ACME_API_KEY"
    )
    assert message.count("401") == 1 and "acme-secret" not in message
