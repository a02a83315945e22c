"""Warnings a client can repeat at will are folded, not repeated."""

from __future__ import annotations

import logging

import pytest

from voicekit.lograte import FoldedWarning


def test_the_first_is_written_the_rest_folded_into_the_next_after_the_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    folded = FoldedWarning(logging.getLogger("voicekit.test"), 10.0, clock=lambda: now[0])
    caplog.set_level(logging.DEBUG, logger="voicekit.test")
    for n in range(1000):
        folded.warning("refused a connection from %s", f"peer{n}")
        now[0] += 0.001
    now[0] = 111.0
    folded.warning("refused a connection from %s", "later")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "refused a connection from peer0",
        "refused a connection from later (and 999 more like it in the last 11 s)",
    ]
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 999
