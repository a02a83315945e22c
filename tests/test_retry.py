"""One error mapping and one retry policy for every provider (voicekit.provider_errors,
voicekit.retry)."""

from __future__ import annotations

import email.utils

import pytest

from voicekit.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from voicekit.provider_errors import retry_after_s, status_error
from voicekit.retry import RetryPolicy

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "status, kind, retryable",
    [
        (401, ProviderAuthError, False),
        (403, ProviderAuthError, False),
        (429, RateLimited, True),
        (408, ProviderUnavailable, True),
        (500, ProviderUnavailable, True),
        (503, ProviderUnavailable, True),
        (400, ProviderError, False),
        (422, ProviderError, False),
        (None, ProviderError, False),
    ],
)
def test_one_mapping_from_status_to_error(status: int | None, kind: type, retryable: bool) -> None:
    error = status_error(status, "Acme refused", provider="acme", key_env="ACME_API_KEY")
    assert type(error) is kind and error.retryable is retryable and error.status_code == status
    if kind is ProviderAuthError:
        assert "check ACME_API_KEY" in str(error)


def test_the_status_is_said_once_and_a_refused_keys_answer_is_not_quoted() -> None:
    """Plugins word their messages differently; the error names the status exactly once,
    and a 401's body (which may quote part of the key) stays out of it."""
    said = status_error(401, "Acme refused the connection (HTTP 401)", provider="a", key_env="K")
    unsaid = status_error(401, "Acme refused the connection", provider="a", key_env="K", detail="x")
    expected = "Acme refused the connection (HTTP 401): the key was refused; check K"
    assert str(said).endswith(expected) and str(unsaid).endswith(expected)
    assert str(said).count("401") == 1
    limited = status_error(429, "Acme refused", provider="a", detail="too many")
    assert str(limited).endswith("Acme refused (HTTP 429): too many")
    assert str(status_error(None, "Acme failed", provider="a")).endswith("Acme failed")


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({"Retry-After": "0.5"}) == 0.5
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after_s({"retry-after": date}, now=1_000_000) == 30.0
    assert retry_after_s({"retry-after": "soon"}) is None and retry_after_s({}) is None
    limited = status_error(429, "slow down", provider="acme", retry_after=2.0)
    assert isinstance(limited, RateLimited) and limited.retry_after == 2.0


async def test_the_policy_retries_retryable_errors_honouring_retry_after() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    answers: list[BaseException | str] = [
        RateLimited("429", retry_after=1.5),
        ProviderUnavailable("503"),
        "ok",
    ]

    async def request() -> str:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    assert await RetryPolicy(attempts=3, sleep=sleep).call(request) == "ok"
    assert waits == [1.5, 0.4]  # retry-after first, then the backoff for the 2nd retry


@pytest.mark.parametrize(
    "error, tries",
    [
        (ProviderAuthError("no"), 1),  # never retryable
        (ProviderError("bad request"), 1),  # not retryable
        (RateLimited("429", retry_after=60), 1),  # longer than a caller can wait
        (ProviderUnavailable("503"), 4),  # up to the attempts
    ],
)
async def test_what_the_policy_does_not_retry(error: ProviderError, tries: int) -> None:
    calls = 0

    async def sleep(seconds: float) -> None:
        pass

    async def request() -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(type(error)):
        await RetryPolicy(attempts=4, sleep=sleep).call(request)
    assert calls == tries


async def test_the_caller_can_forbid_a_retry_the_policy_would_make() -> None:
    """The reply pipeline forbids it once audio of the reply may have reached the caller."""
    calls = 0
    audio_sent = False

    async def sleep(seconds: float) -> None:
        pass

    async def request() -> None:
        nonlocal calls, audio_sent
        calls += 1
        audio_sent = True
        raise ProviderUnavailable("dropped mid-reply")

    with pytest.raises(ProviderUnavailable):
        await RetryPolicy(attempts=5, sleep=sleep).call(request, lambda _: not audio_sent)
    assert calls == 1
