"""Process tuning: ``[server] event_loop`` and freezing the start-up heap."""

from __future__ import annotations

import gc
import sys

import pytest

from voicekit.config import load_settings
from voicekit.errors import ConfigError
from voicekit.server.runtime import (
    NEVER,
    IdleCollector,
    _report_slow_collections,
    backend_options,
    collector,
    freeze_startup_heap,
)


def test_auto_uses_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")
    assert backend_options(load_settings().server.event_loop) == {"use_uvloop": True}
    assert backend_options("uvloop") == {"use_uvloop": True}


def test_asyncio_on_request() -> None:
    assert backend_options("asyncio") == {}


def test_without_uvloop_auto_falls_back_and_uvloop_names_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # find_spec raises for a None entry
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert backend_options("auto") == {}
    with pytest.raises(ConfigError, match=r"server.event_loop.*pip install 'voicekit\[server\]'"):
        backend_options("uvloop")


def test_bad_value_names_the_field() -> None:
    with pytest.raises(ConfigError, match="event_loop"):
        load_settings(server={"event_loop": "tokio"})


def test_freezing_exempts_existing_objects_from_collection() -> None:
    thresholds = gc.get_threshold()
    try:
        survivor = [object()]
        frozen = freeze_startup_heap()
        assert frozen == gc.get_freeze_count() > 0
        assert gc.is_tracked(survivor)
        assert all(o is not survivor for o in gc.get_objects(generation=2))  # permanent now
        assert gc.get_threshold() == (*thresholds[:2], NEVER)  # no automatic full ones
        assert collector.active
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        collector.active = False
        gc.callbacks.remove(_report_slow_collections)


def test_full_collections_happen_when_no_call_is_up_or_after_many_calls() -> None:
    """Cyclic garbage a call leaves is collected when the last call ends, and at least
    every ``every_calls`` calls on a server that is never idle."""
    thresholds = gc.get_threshold()
    policy = IdleCollector(every_calls=3)
    try:
        policy.take_over()

        class Cycle:
            pass

        def leave_cycle() -> None:
            a, b = Cycle(), Cycle()
            a.b, b.a = b, a  # type: ignore[attr-defined]

        leave_cycle()
        policy.call_ended(calls_left=5)
        policy.call_ended(calls_left=5)
        assert policy.collections == 0 and any(isinstance(o, Cycle) for o in gc.get_objects())
        policy.call_ended(calls_left=5)  # the third call since the last collection
        assert policy.collections == 1
        assert not any(isinstance(o, Cycle) for o in gc.get_objects())
        leave_cycle()
        policy.call_ended(calls_left=0)  # idle
        assert policy.collections == 2
        assert not any(isinstance(o, Cycle) for o in gc.get_objects())
        leave_cycle()  # as a refused media connection does
        policy.connection_refused()
        policy.connection_refused()
        assert policy.collections == 2  # refusals are not calls: no collection per refusal
        policy.connection_refused()
        assert policy.collections == 3
        assert not any(isinstance(o, Cycle) for o in gc.get_objects())
    finally:
        policy.give_back(thresholds)


PYTHON_DEFAULT_THRESHOLDS = (700, 10, 10)


def test_a_heap_grown_by_cycles_no_call_left_is_collected_with_calls_up() -> None:
    """Garbage cycles that no call end accounts for (abandoned pipelined requests, say)
    are collected once the heap has grown enough, with no call ending at all."""
    thresholds = gc.get_threshold()
    policy = IdleCollector(growth_blocks=200_000)
    try:
        gc.set_threshold(*PYTHON_DEFAULT_THRESHOLDS)  # as a server runs (the suite's are higher)
        gc.collect()
        policy.take_over()

        class Node:
            pass

        def leave_cycles(n: int) -> None:
            """Cycles that lived long enough to reach the oldest generation (as a queued
            request does until its connection closes), then became garbage."""
            alive = []
            for _ in range(n):
                a, b = Node(), Node()
                a.b, b.a = b, a  # type: ignore[attr-defined]
                alive.append(a)
            gc.collect(1)  # survivors of a middle collection move to the oldest generation
            alive.clear()

        leave_cycles(10_000)
        assert policy.growth_collections == 0  # a little garbage waits for an idle moment
        assert any(isinstance(o, Node) for o in gc.get_objects())
        for _ in range(40):  # far more than the bound: the middle collections see it
            leave_cycles(20_000)
            if policy.growth_collections and not any(isinstance(o, Node) for o in gc.get_objects()):
                break
        assert policy.growth_collections >= 1
        assert gc.get_threshold()[2] == NEVER  # back to no automatic full collections
        assert policy.collections == 0  # no call ended: it was the growth
    finally:
        policy.give_back(thresholds)
        gc.collect()
