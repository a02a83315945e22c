"""voicekit.tasks: a cancelled task lets go of what it referenced at once."""

from __future__ import annotations

import gc
import weakref

import anyio
import pytest

from voicekit.tasks import released_on_cancel, spawn

pytestmark = pytest.mark.anyio


class Payload:
    """Stands in for a call's objects."""


async def hold(payload: Payload) -> None:
    await anyio.sleep(60)


@pytest.fixture
def no_gc():  # type: ignore[no-untyped-def]
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_cancelled_task_is_freed_by_reference_counting(no_gc: None) -> None:
    payload = Payload()
    ref = weakref.ref(payload)
    async with anyio.create_task_group() as tg:
        spawn(tg, hold, payload)
        await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    del payload
    assert ref() is None


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_without_it_anyio_keeps_the_task_until_a_full_collection(no_gc: None) -> None:
    """Why voicekit.tasks exists; if anyio stops making the cycle, this fails and the
    wrapper can go."""
    payload = Payload()
    ref = weakref.ref(payload)
    async with anyio.create_task_group() as tg:
        tg.start_soon(hold, payload)
        await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    del payload
    assert ref() is not None
    gc.collect()
    assert ref() is None


async def test_other_exceptions_keep_their_traceback() -> None:
    async def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom") as info:
        await released_on_cancel(fail)
    assert any(entry.name == "fail" for entry in info.traceback)


async def test_the_task_keeps_its_own_name() -> None:
    names: list[str] = []

    async def named() -> None:
        task = anyio.get_current_task()
        names.append(task.name or "")

    async with anyio.create_task_group() as tg:
        spawn(tg, named)
    assert names and names[0].endswith("named")


async def test_cancellation_still_cancels() -> None:
    finished = False

    async def runs() -> None:
        nonlocal finished
        await anyio.sleep(60)
        finished = True

    with anyio.move_on_after(0.05) as scope:
        async with anyio.create_task_group() as tg:
            spawn(tg, runs)
    assert scope.cancelled_caught and not finished
