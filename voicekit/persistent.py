"""A provider WebSocket held for a whole call: connect, read, keep alive, reconnect, close.

Streaming providers (Soniox STT, the ElevenLabs multi-stream TTS, and any to come) share
one skeleton: open the socket with retries, send a first message, read in the
background, keep the socket alive when idle, reconnect after a drop (up to a budget) and
re-send what the provider still owes, and close within bounds from any task. This class
is that skeleton; a plugin subclasses it and writes only its wire protocol, in hooks:

=====================  ====================================================================
hook                   what the subclass does there
=====================  ====================================================================
``url()``,             where and how to connect (the key goes in a header, never a log)
``headers()``
``on_connected()``     the first message of every connection (a config), under the lock,
                       sent with ``send_locked``
``on_reconnect()``     re-send what was owed when the socket dropped, under the lock;
                       sends use ``send_locked`` (the socket is ``usable`` then, not yet
                       ``connected``, so other senders still wait)
``on_message(raw)``    one message from the provider; raise a ProviderError to drop the
                       connection (retryable: reconnect; not: give up)
``close_error()``      whether the provider's close is final (an error) or a blip
``stream_done()``      whether the provider ended the stream normally (no reconnect)
``keepalive_message``  what to send when nothing was sent for ``keepalive_interval_s``
``goodbye()``          the graceful end on close (an end-of-input message, a wait)
``on_failure(error)``  the connection is gone for good: fail what waits on it
=====================  ====================================================================

``on_connected``, ``on_reconnect`` and ``goodbye`` are coroutines (``async def``); the
others are plain functions, called from the reader between two messages. A subclass that
declares one the other way fails when the class is defined, not silently in a call.

State: ``usable`` (socket open and initialised) and ``connected`` (usable and nothing
owed). ``send()`` takes the lock; ``send_now()`` writes without it when connected (audio,
50 messages a second), and reports False when the message must wait for the replay.
A sender that records what it owes (so that ``on_reconnect`` can re-send it) records and
sends under ``async with self.locked():`` with ``send_locked``: a replay then either ran
before (and the message goes out now) or runs after (and re-sends it), never both.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Self

import anyio
from websockets.exceptions import ConnectionClosed

from voicekit._resource import AsyncResource
from voicekit.background import BackgroundTasks
from voicekit.clock import loop_clock
from voicekit.errors import ProviderError, ProviderUnavailable
from voicekit.reconnect import ReconnectBudget
from voicekit.retry import RetryPolicy
from voicekit.websocket import close_websocket, connect_websocket, send_message, write_message_now

__all__ = ["PersistentWebSocket"]

logger = logging.getLogger(__name__)

_COROUTINE_HOOKS = ("on_connected", "on_reconnect", "goodbye")
_PLAIN_HOOKS = (
    "url",
    "headers",
    "on_message",
    "close_error",
    "stream_done",
    "keepalive_message",
    "on_failure",
)


class PersistentWebSocket(AsyncResource):
    """Base of a provider's per-call WebSocket session; see the module docstring."""

    provider: ClassVar[str]  # for errors: "soniox"
    label: ClassVar[str]  # for messages: "Soniox"
    key_env: ClassVar[str]  # the variable holding the key, named when it is refused
    max_size: ClassVar[int] = 2**22  # largest message accepted from the provider

    def __init__(
        self,
        *,
        call_id: str | None,
        open_timeout_s: float,
        keepalive_interval_s: float | None,
        goodbye_timeout_s: float = 2.0,
        policy: RetryPolicy | None = None,
        budget: ReconnectBudget | None = None,
    ) -> None:
        self.call_id = call_id or "-"
        self.open_timeout_s = open_timeout_s
        self.keepalive_interval_s = keepalive_interval_s
        self.goodbye_timeout_s = goodbye_timeout_s
        self.policy = policy
        self.reconnects = 0
        self._budget = budget or ReconnectBudget()
        self._ws: Any = None
        self._usable = False
        self._connected = False
        self._closing = False
        self._lock = anyio.Lock()
        self._last_send = 0.0
        self._now = anyio.current_time
        self._tasks = self.own(
            BackgroundTasks(f"{self.provider} call={self.call_id}", on_error=self._task_failed)
        )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse a hook declared the wrong way: an ``async def on_message`` would only
        make a coroutine that nothing awaits (no error, and nothing ever arrives)."""
        super().__init_subclass__(**kwargs)
        for name in _COROUTINE_HOOKS + _PLAIN_HOOKS:
            hook = getattr(cls, name) if name in cls.__dict__ else None
            if not callable(hook):
                continue
            wants_coroutine = name in _COROUTINE_HOOKS
            if inspect.iscoroutinefunction(hook) != wants_coroutine:
                kind = "async def" if wants_coroutine else "a plain def (not async def)"
                raise TypeError(f"{cls.__qualname__}.{name} must be {kind}")

    # -- the hooks ------------------------------------------------------------------------

    def url(self) -> str:
        raise NotImplementedError

    def headers(self) -> Mapping[str, str]:
        return {}

    async def on_connected(self) -> None:
        """After every connect, under the lock: send the first message, if any."""

    async def on_reconnect(self) -> None:
        """After a reconnect's ``on_connected``, under the lock: re-send what is owed."""

    def on_message(self, raw: str | bytes) -> None:
        raise NotImplementedError

    def close_error(self, code: int | None, reason: str) -> ProviderError | None:
        """An error if the provider closed for good (bad request, auth); None: reconnect."""
        return None

    def stream_done(self) -> bool:
        """True once the provider has ended the stream normally: do not reconnect."""
        return False

    def keepalive_message(self) -> str | bytes | None:
        return None

    async def goodbye(self) -> None:
        """On close, while connected: end the input gracefully (bounded by the caller)."""

    def on_failure(self, error: ProviderError) -> None:
        """The connection is gone for good: fail whatever waits on it."""

    # -- state ----------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """The socket is open and initialised (a replay may still be under way)."""
        return self._usable

    @property
    def connected(self) -> bool:
        """Usable, and nothing is owed: any sender may write."""
        return self._connected

    @property
    def closing(self) -> bool:
        return self._closing

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Connect (with the retry policy), send ``on_connected``'s first message and start
        reading; a refused or failed connection raises the mapped ProviderError."""
        async with self._lock:
            await self._open()
        self._connected = True
        self._tasks.start(self._reader)
        if self.keepalive_interval_s:
            self._tasks.start(self._keepalive)
        return self

    async def _open(self) -> None:
        self._ws = await connect_websocket(
            self.url(),
            self.headers(),
            provider=self.provider,
            label=self.label,
            key_env=self.key_env,
            open_timeout_s=self.open_timeout_s,
            max_size=self.max_size,
            policy=self.policy,
        )
        self._now = loop_clock()  # the loop the connection lives in
        self._last_send = self._now()
        self._usable = True  # for on_connected's send_locked; other senders wait on the lock
        try:
            await self.on_connected()
        except (ConnectionClosed, OSError) as exc:
            self._usable = False
            raise ProviderUnavailable(
                f"{self.label} closed the connection at once: {exc}", provider=self.provider
            ) from None
        except BaseException:
            self._usable = False
            raise

    async def aclose(self) -> None:
        """The graceful goodbye (cut short by the caller's timeout or cancellation), then
        the socket and the background tasks, always: bounded, and safe from any task."""
        if self._closing:
            return
        self._closing = True  # from here a drop is the end, not a reason to reconnect
        graceful = True
        try:
            with anyio.move_on_after(self.goodbye_timeout_s):
                if self.connected:
                    try:
                        await self.goodbye()
                    except (ConnectionClosed, OSError):
                        pass
        except BaseException:
            graceful = False
            raise
        finally:
            self._usable = self._connected = False
            with anyio.CancelScope(shield=True):
                await close_websocket(self._ws, 1.0 if graceful else 0.0)
                await self.stop_owned_tasks()

    # -- sending --------------------------------------------------------------------------

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """Hold the send lock: record what is owed and send it (``send_locked``) as one
        step, so a reconnect's replay cannot send it as well."""
        async with self._lock:
            yield

    def start_task(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``func(*args)`` in the background for as long as this connection: stopped
        by ``aclose``, and a failure (a bug) fails the connection instead of vanishing."""
        self._tasks.start(func, *args)

    async def send(self, message: str | bytes) -> bool:
        """Send under the lock; False (and nothing sent) while the socket is down."""
        async with self._lock:
            return await self.send_locked(message)

    async def send_locked(self, message: str | bytes) -> bool:
        """Send with the lock already held (in ``on_connected``/``on_reconnect``)."""
        if not self.usable:
            return False
        try:
            await self._ws.send(message)
        except (ConnectionClosed, OSError):
            return False  # the reader sees the drop and reconnects
        self._last_send = anyio.current_time()
        return True

    async def send_now(self, message: str | bytes) -> bool:
        """Write at once without the lock, when connected; False when it must wait (the
        socket is down or a replay is under way) or the write failed."""
        if not self._connected:
            return False
        try:
            await send_message(self._ws, message)
        except (ConnectionClosed, OSError):
            return False
        self._last_send = self._now()
        return True

    def write_now(self, message: str | bytes) -> bool:
        """:meth:`send_now` without awaiting, for a caller that cannot (a socket's own
        callback): True if the message was written, or the write failed and the
        connection is gone (the reader reconnects, and what the subclass keeps to replay
        is resent); False, with nothing written, when it would have to wait."""
        if not self._connected:
            return False
        try:
            if not write_message_now(self._ws, message):
                return False
        except (ConnectionClosed, OSError):
            return True
        self._last_send = self._now()
        return True

    # -- background -----------------------------------------------------------------------

    async def _keepalive(self) -> None:
        interval = self.keepalive_interval_s or 0.0
        while True:
            await anyio.sleep(max(0.05, self._last_send + interval - anyio.current_time()))
            if anyio.current_time() - self._last_send < interval or not self.connected:
                continue
            message = self.keepalive_message()
            if message is not None:
                await self.send(message)

    async def _reader(self) -> None:
        while not self._closing:
            ws = self._ws
            error: ProviderError | None = None
            try:
                async for raw in ws:
                    try:
                        self.on_message(raw)
                    except ProviderError as exc:
                        error = exc
                        break
            except ConnectionClosed:
                pass
            if self._closing or self.stream_done():
                return
            error = error or self.close_error(ws.close_code, ws.close_reason or "")
            async with self._lock:
                self._usable = self._connected = False
            if error is not None and not error.retryable:
                logger.error("call=%s: %s", self.call_id, error)
                self._give_up(error)
                return
            if not self._budget.spend():
                failure = error or ProviderUnavailable(
                    f"{self.label} keeps dropping the connection", provider=self.provider
                )
                logger.error(
                    "call=%s: giving up after repeated reconnects: %s", self.call_id, failure
                )
                self._give_up(failure)
                return
            logger.warning(
                "call=%s: %s connection lost (%s); reconnecting",
                self.call_id,
                self.label,
                error or f"close code {ws.close_code}",
            )
            if not await self._reconnect():
                return

    async def _reconnect(self) -> bool:
        self.reconnects += 1
        async with self._lock:
            try:
                await self._open()
            except ProviderError as exc:
                logger.error("call=%s: %s reconnect failed: %s", self.call_id, self.label, exc)
                self._give_up(exc)
                return False
            await self.on_reconnect()
            self._connected = self._usable
        logger.warning(
            "call=%s: %s connection restored (reconnect %d)",
            self.call_id,
            self.label,
            self.reconnects,
        )
        return True

    def _give_up(self, error: ProviderError) -> None:
        self._usable = self._connected = False
        self.on_failure(error)

    def _task_failed(self, exc: Exception) -> None:
        """A background task died (a bug): fail what waits rather than leave it waiting."""
        if not self._closing:
            self._give_up(
                ProviderError(f"{self.label} session failed: {exc}", provider=self.provider)
            )
