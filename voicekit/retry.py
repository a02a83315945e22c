"""One retry policy for every provider request: when to try again, and how long to wait.

Only a :class:`~voicekit.errors.ProviderError` marked ``retryable`` (a rate limit, an
outage, a network failure: :mod:`voicekit.provider_errors`) is tried again, and only while
the caller allows it: the reply pipeline allows it only until the first piece of a reply
has gone to the TTS, so a retry never makes the caller hear words twice. The wait is what
the provider asked for (``retry-after``) when it said, else exponential; a provider that
asks for more than ``max_retry_after_s`` is not waited for, since a caller on the line
cannot wait that long either.

Each provider's policy comes from its ``retry_attempts`` option (``Provider.retry_policy``);
tests pass a policy with a recording ``sleep`` to check the waits without waiting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt

from voicekit.errors import ProviderError

__all__ = ["RetryPolicy"]


def _always(exc: BaseException) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3  # tries in all, the first included
    base_delay_s: float = 0.2  # before the second try; doubling after that
    max_delay_s: float = 2.0
    max_retry_after_s: float = 10.0
    sleep: Callable[[float], Awaitable[Any]] = field(default=anyio.sleep, compare=False)

    def with_attempts(self, attempts: int) -> RetryPolicy:
        return replace(self, attempts=attempts)

    def delay_s(self, attempt: int, error: BaseException) -> float | None:
        """Seconds to wait after failed try number ``attempt``; None: do not retry."""
        if not (isinstance(error, ProviderError) and error.retryable):
            return None
        if attempt >= self.attempts:
            return None
        retry_after: float | None = error.retry_after
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after_s else None
        return min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))

    def retrying(
        self,
        allowed: Callable[[BaseException], bool] = _always,
        *,
        before_retry: Callable[[int, BaseException], None] | None = None,
    ) -> AsyncRetrying:
        """A tenacity ``AsyncRetrying`` for this policy: ``async for attempt in ...:``.

        ``allowed(error)`` can veto a retry the policy would make (e.g. once audio of
        the reply reached the caller); ``before_retry(attempt, error)`` is told of each.
        """

        def should_retry(state: RetryCallState) -> bool:
            error = state.outcome.exception() if state.outcome else None
            return (
                error is not None
                and allowed(error)
                and self.delay_s(state.attempt_number, error) is not None
            )

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            delay = self.delay_s(state.attempt_number, error) if error else None
            if before_retry is not None and error is not None:
                before_retry(state.attempt_number, error)
            return delay or 0.0

        return AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait,
            retry=should_retry,
            sleep=self.sleep,
            reraise=True,
        )

    async def call(
        self,
        func: Callable[[], Awaitable[Any]],
        allowed: Callable[[BaseException], bool] = _always,
    ) -> Any:
        """``await func()``, tried again as this policy says."""
        async for attempt in self.retrying(allowed):
            with attempt:
                return await func()
        raise AssertionError("unreachable")  # pragma: no cover
