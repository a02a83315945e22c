"""A captured webhook cannot be acted on twice while its signature is still valid."""

from __future__ import annotations

import logging

import pytest
from voicekit_telnyx.replay import SeenEvents


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_id_is_refused_until_its_signature_has_surely_expired() -> None:
    clock = Clock()
    seen = SeenEvents(300, clock=clock)
    assert seen.first_time("evt-1")
    for n in range(20_000):  # more traffic than the old fixed memory of 10,000 ids
        assert seen.first_time(f"other-{n}")
    clock.now += 599
    assert not seen.first_time("evt-1")  # signed up to 300 s after it was first seen
    clock.now += 2
    assert seen.first_time("evt-1")  # 601 s: its signature cannot be valid any more
    assert len(seen) == 1  # everything older went with it


def test_memory_is_bounded_and_the_bound_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen = SeenEvents(300, limit=100, clock=Clock())
    with caplog.at_level(logging.WARNING):
        for n in range(250):
            seen.first_time(f"e{n}")
    assert len(seen) == 100 and seen.first_time("e0")  # the oldest was forgotten
    assert caplog.text.count("forgotten before their signatures expire") == 1
