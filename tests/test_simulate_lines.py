"""When the simulated caller speaks: after the agent's turn, and after the phrase cache
warmed, but never waiting on the cache for long or once the call is over."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import trio.testing

from voicekit.simulate.run import WARM_WAIT_S, _speak_lines

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


class Caller:
    """The parts of a SimulatedCall that _speak_lines uses; the agent never speaks."""

    def __init__(self, closed_code: int | None = None) -> None:
        self.closed_code = closed_code
        self.said_at: list[float] = []

    async def agent_turn_over(self, since: float, **_: Any) -> bool:
        return True

    async def wait(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    async def say(self, audio: bytes) -> Any:
        self.said_at.append(anyio.current_time())
        return type("Report", (), {"ended_at": anyio.current_time(), "agent_started_at": None})


async def test_the_first_line_waits_for_warming_at_most_a_bounded_time() -> None:
    never_warm = anyio.Event()
    caller = Caller()
    start = anyio.current_time()
    await _speak_lines(caller, [b"hi"], False, never_warm)  # type: ignore[arg-type]
    assert caller.said_at and caller.said_at[0] - start == pytest.approx(
        0.5 + WARM_WAIT_S, abs=0.06
    )


async def test_a_warm_cache_or_an_ended_call_waits_for_nothing() -> None:
    warmed = anyio.Event()
    warmed.set()
    caller = Caller()
    start = anyio.current_time()
    await _speak_lines(caller, [b"hi"], False, warmed)  # type: ignore[arg-type]
    assert caller.said_at[0] - start == pytest.approx(0.5, abs=0.01)
    gone = Caller(closed_code=1000)
    await _speak_lines(gone, [b"hi"], False, anyio.Event())  # type: ignore[arg-type]
    assert gone.said_at == [] and anyio.current_time() - start < 1.2
