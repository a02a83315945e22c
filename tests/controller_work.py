"""Work the xdist controller does in a thread while its workers start (a second or two
of importing pytest and the conftest), shared by ``tests/rewrite_cache.py`` and
``tests/bytecode_cache.py``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

__all__ = ["JOIN_TIMEOUT_S", "in_background", "run_temp_root"]

JOIN_TIMEOUT_S = 5.0  # one file's work at most, then the run ends regardless


def run_temp_root(config: pytest.Config) -> Path | None:
    """This run's pytest temp directory (pytest prunes old ones, a killed run's after its
    three-day lock timeout); None under ``-p no:tmpdir``."""
    factory = getattr(config, "_tmp_path_factory", None)
    return factory.getbasetemp() if isinstance(factory, pytest.TempPathFactory) else None


def in_background(
    config: pytest.Config,
    name: str,
    work: Callable[[threading.Event], None],
    after: Callable[[], None] | None = None,
) -> None:
    """Run ``work(stop)`` in a daemon thread. When the run ends, ``stop`` is set (an
    interrupted run does not wait for the rest), the thread is waited for at most
    ``JOIN_TIMEOUT_S``, then ``after`` runs."""
    stop = threading.Event()
    thread = threading.Thread(target=work, args=(stop,), name=name, daemon=True)
    thread.start()

    def cleanup() -> None:
        stop.set()
        thread.join(timeout=JOIN_TIMEOUT_S)
        if after is not None:
            after()

    config.add_cleanup(cleanup)
