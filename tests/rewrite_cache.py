"""The test modules' assertion rewriting, done once per run instead of once per worker.

pytest rewrites every test module's ``assert`` statements so a failure shows its values,
and caches the result as a ``.pyc`` beside the module, unless Python may not write
bytecode (``PYTHONDONTWRITEBYTECODE``, which many CI images set). Then each xdist
worker parses and rewrites all of ``tests/`` again: about a second of CPU each, for a
suite that is bound by two cores.

Where bytecode may not be written, the controlling process rewrites the test modules the
run names once, in a thread while the workers start, into a new directory in pytest's
temp directory for this run (removed when the run ends; pytest prunes old run
directories, a killed run's after its three-day lock timeout; the checkout gets
nothing). Each
worker is told the directory with its start-up data and reads the modules from there;
one it reaches before the controller has written it, it rewrites itself. pytest's own
reader checks each file against its module's source, so a stale or damaged file is
rewritten again as usual.

This reaches into pytest's private ``_pytest.assertion.rewrite`` (``_rewrite_test``,
``_write_pyc``, ``PYC_TAIL``, ``assertstate_key``, and ``get_cache_dir``, which workers
replace) and ``config._tmp_path_factory``. If a release changes them, the suite runs as
before, only slower, and ``tests/test_rewrite_cache.py`` fails to say so. (The same
for ``-p no:tmpdir``: nothing is shared without pytest's temp directory.)

One visible difference: a warning Python gives while compiling a test module (an invalid
escape sequence in a string) is printed once as the run starts, by the controller,
instead of in the warnings summary. ``-W error`` still turns it into the same
collection error, raised by the worker that then compiles the module itself.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest

from tests.controller_work import in_background, run_temp_root

__all__ = ["read_shared_rewrites", "rewrite_for_workers", "shared_cache", "tell_worker"]

WORKER_INPUT_KEY = "shared_rewrite_cache"


_shared: Path | None = None


def shared_cache() -> Path | None:
    """The directory this process reads (a worker) or filled (the controller), if any."""
    return _shared


def _private_api() -> Any:
    """pytest's assertion-rewriting module, if it still has what this needs."""
    try:
        from _pytest.assertion import rewrite
    except ImportError:  # pragma: no cover
        return None
    needed = ("PYC_TAIL", "_rewrite_test", "_write_pyc", "assertstate_key", "get_cache_dir")
    return rewrite if all(hasattr(rewrite, name) for name in needed) else None


def read_shared_rewrites(config: pytest.Config) -> None:
    """Call from ``pytest_configure``: a worker reads the modules the controller rewrote."""
    global _shared
    rewrite = _private_api()
    shared = getattr(config, "workerinput", {}).get(WORKER_INPUT_KEY)
    if shared and rewrite is not None and sys.dont_write_bytecode:
        _shared = Path(shared)
        rewrite.get_cache_dir = _redirected(_shared, rewrite.get_cache_dir)


def rewrite_for_workers(config: pytest.Config) -> None:
    """Call from xdist's ``pytest_xdist_setupnodes`` (workers are about to start, so not
    under ``--collect-only``): the controller rewrites the test modules for them."""
    global _shared
    rewrite = _private_api()
    if not sys.dont_write_bytecode or rewrite is None:
        return  # pytest caches rewritten modules beside them, shared by every process
    state = config.stash.get(rewrite.assertstate_key, None)
    if state is None:
        return  # assertion rewriting is off (--assert=plain)
    root = run_temp_root(config)
    if root is None:
        return  # -p no:tmpdir: the workers rewrite for themselves
    shared = _shared = Path(tempfile.mkdtemp(prefix="rewritten-tests-", dir=root))
    sources = _test_modules(config)

    def rewrite_all(stop: threading.Event) -> None:
        for source in sources:
            if stop.is_set():
                return
            try:
                stamp, code = rewrite._rewrite_test(source, config)  # the source's hash or stat
                cache = _cache_dir(shared, source)
                cache.mkdir(parents=True, exist_ok=True)
                pyc = cache / (source.name[:-3] + rewrite.PYC_TAIL)
                rewrite._write_pyc(state, code, stamp, pyc)
            except Exception:  # the worker rewrites it, and reports any error in it
                continue

    # In the test modules' collection order. A worker that gets to a module first
    # rewrites it itself; a file is only ever seen whole (written aside, then renamed).
    in_background(
        config,
        "rewrite tests",
        rewrite_all,
        after=lambda: shutil.rmtree(shared, ignore_errors=True),
    )


def tell_worker(node: Any) -> None:
    """Call from xdist's ``pytest_configure_node``: the worker learns the directory with
    its start-up data (not from the environment, which the tests' child processes and
    whoever started pytest share)."""
    if _shared is not None:
        node.workerinput[WORKER_INPUT_KEY] = str(_shared)


def _test_modules(config: pytest.Config) -> list[Path]:
    """The test modules under ``testpaths`` that the run's arguments name, in collection
    order: all of them when an argument is not a path (``--pyargs``) or contains them
    all (``.``). Nothing outside ``testpaths`` (a virtualenv's own tests under ``.``)."""
    patterns = config.getini("python_files")
    modules = [
        source
        for root in config.getini("testpaths") or ["tests"]
        for source in sorted((config.rootpath / root).resolve().rglob("*.py"))
        if source.is_file() and any(fnmatch(source.name, p) for p in patterns)
    ]
    named = [
        (config.invocation_params.dir / arg.split("::", 1)[0]).resolve() for arg in config.args
    ]
    if not all(path.exists() for path in named):
        return modules
    return [m for m in modules if any(m == path or path in m.parents for path in named)]


def _cache_dir(shared: Path, source: Path) -> Path:
    return shared.joinpath(*source.resolve().parts[1:-1])


def _redirected(shared: Path, original: Callable[[Path], Path]) -> Callable[[Path], Path]:
    def get_cache_dir(file_path: Path) -> Path:
        cache = _cache_dir(shared, file_path)
        return cache if cache.is_dir() else original(file_path)

    return get_cache_dir
