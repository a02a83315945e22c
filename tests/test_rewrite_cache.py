"""The suite's shared assertion rewriting (tests/rewrite_cache.py) is in effect."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from _pytest.assertion import rewrite

from tests.rewrite_cache import shared_cache


@pytest.fixture
def rewriting(request: pytest.FixtureRequest) -> None:
    if request.config.getoption("assertmode") == "plain":
        pytest.skip("assertion rewriting is off (--assert=plain)")


@pytest.mark.skipif(
    not sys.dont_write_bytecode or "PYTEST_XDIST_WORKER" not in os.environ,
    reason="only xdist workers where PYTHONDONTWRITEBYTECODE is set read shared rewrites",
)
def test_this_worker_reads_the_modules_the_controller_rewrote(rewriting: None) -> None:
    shared = shared_cache()
    assert shared is not None, "the controller did not share its rewrites (a pytest change?)"
    # The controller writes them while the workers start; in a short run this test can
    # come first.
    source = Path(__file__).resolve()
    pyc = shared.joinpath(*source.parts[1:-1], source.stem + rewrite.PYC_TAIL)
    deadline = time.monotonic() + 60
    while not pyc.is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pyc.is_file()
    assert rewrite.get_cache_dir(source) == pyc.parent  # where this worker's pytest reads


def test_asserts_in_this_module_are_rewritten(rewriting: None) -> None:
    """Whatever the cache, a failing assert still explains itself."""
    values = [1, 2]
    with pytest.raises(AssertionError) as failure:
        assert values == [1, 3]
    assert "[1, 2] == [1, 3]" in str(failure.value)
