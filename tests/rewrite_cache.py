"""The test modules' assertion rewriting, done once per run instead of once per worker.

pytest rewrites every test module's ``assert`` statements so a failure shows its values,
and caches the result as a ``.pyc`` beside the module, unless Python may not write
bytecode (``PYTHONDONTWRITEBYTECODE``, which many CI images set). Then each of the six
xdist workers parses and rewrites all of ``tests/`` again: about a second of CPU each,
six seconds of a suite that is bound by two cores.

Where bytecode may not be written, the controlling process rewrites the test modules once,
while the workers start, into a directory of its own under the system's temp dir
(removed when the run ends; the checkout gets nothing), and each worker reads them from
there. pytest's own reader checks each file against its module's source hash, so a stale
or damaged file is rewritten again as usual. This uses three of pytest's private
functions; if a pytest release renames them, the suite runs as before, only slower.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path

import pytest

__all__ = ["share_rewritten_tests", "shared_cache"]

CACHE_ENV = "PYTEST_SHARED_REWRITE_CACHE"  # not VOICEKIT_*: the config would see it


_shared: Path | None = None


def shared_cache() -> Path | None:
    """The directory this process reads (a worker) or filled (the controller), if any."""
    return _shared


def share_rewritten_tests(config: pytest.Config) -> None:
    """Call from ``pytest_configure``: the controller fills the cache, a worker reads it."""
    if not sys.dont_write_bytecode:
        return  # pytest caches rewritten modules beside them, shared by every process
    try:
        from _pytest.assertion import rewrite
        from _pytest.assertion.rewrite import PYC_TAIL, _rewrite_test, _write_pyc
    except ImportError:  # pragma: no cover  (a pytest without these: rewrite as usual)
        return
    global _shared
    if hasattr(config, "workerinput"):
        shared = os.environ.pop(CACHE_ENV, None)  # not for the tests' own child processes
        if shared:
            _shared = Path(shared)
            rewrite.get_cache_dir = _redirected(_shared, rewrite.get_cache_dir)
        return
    if not config.getoption("numprocesses", None) or config.getoption("dist", "no") == "no":
        return  # one process: nothing to share
    state = (
        config.stash.get(rewrite.assertstate_key, None)
        if hasattr(rewrite, "assertstate_key")
        else None
    )
    if state is None:
        return  # assertion rewriting is off (--assert=plain)
    _shared = shared = Path(tempfile.mkdtemp(prefix="voicekit-rewritten-tests-"))
    sources = _test_modules(config)

    def rewrite_all() -> None:
        for source in sources:
            try:
                source_hash, code = _rewrite_test(source, config)
            except Exception:  # a worker's own import reports it properly
                continue
            cache = _cache_dir(shared, source)
            cache.mkdir(parents=True, exist_ok=True)
            _write_pyc(state, code, source_hash, cache / (source.name[:-3] + PYC_TAIL))

    # While the workers start (a second or two of importing pytest and the conftest),
    # in the test modules' collection order. A worker that gets to a module first
    # rewrites it itself; a file is only ever seen whole (written aside, then renamed).
    writer = threading.Thread(target=rewrite_all, name="rewrite tests", daemon=True)
    writer.start()
    os.environ[CACHE_ENV] = str(shared)  # the workers, started after this, inherit it

    def cleanup() -> None:
        writer.join()
        os.environ.pop(CACHE_ENV, None)
        shutil.rmtree(shared, ignore_errors=True)

    config.add_cleanup(cleanup)


def _test_modules(config: pytest.Config) -> list[Path]:
    """The test modules the run's arguments name (``tests/`` when none are given), in
    collection order."""
    patterns = config.getini("python_files")
    found: list[Path] = []
    for arg in config.args:
        path = config.invocation_params.dir / arg.split("::", 1)[0]
        candidates = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        found += [
            source
            for source in candidates
            if source.suffix == ".py" and any(fnmatch(source.name, p) for p in patterns)
        ]
    return found


def _cache_dir(shared: Path, source: Path) -> Path:
    return shared.joinpath(*source.resolve().parts[1:-1])


def _redirected(shared: Path, original: Callable[[Path], Path]) -> Callable[[Path], Path]:
    def get_cache_dir(file_path: Path) -> Path:
        cache = _cache_dir(shared, file_path)
        return cache if cache.is_dir() else original(file_path)

    return get_cache_dir
