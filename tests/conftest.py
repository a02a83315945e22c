"""Shared fixtures: the anyio backend, and fake installed plugin distributions."""

from __future__ import annotations

import atexit
import gc
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from importlib import invalidate_caches
from pathlib import Path
from typing import Any

import pytest

from tests import bytecode_cache, rewrite_cache


def pytest_configure(config: pytest.Config) -> None:
    bytecode_cache.read_prefix(config)
    rewrite_cache.read_shared_rewrites(config)
    if hasattr(config, "workerinput"):
        atexit.register(_exit_without_teardown)


def _exit_without_teardown() -> None:
    """A worker's last step, after pytest and every later ``atexit`` handler are done:
    leave without the interpreter's teardown. That teardown (freeing every module, the
    piper and onnxruntime sessions, the SDKs) took about 0.4 s of CPU per worker, all
    eight at the end of the run when nothing else overlaps it: 1.5 s of the suite's wall
    time. The controller has every result by then and ignores a worker's exit status."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def pytest_collection_finish(session: pytest.Session) -> None:
    """A worker has imported everything by now (voicekit, the SDKs, numpy, every test
    module): those objects live to the end, so the garbage collector's full collections
    need not walk them again during the run. About 1 s of the suite's CPU, measured
    alternately (39.2 / 39.4 / 39.5 s against 39.5 / 41.9 / 39.7 s)."""
    if hasattr(session.config, "workerinput"):
        gc.collect()
        gc.freeze()
        gc.set_threshold(*WORKER_GC_THRESHOLDS)


# A worker's young-generation collections at 50,000 allocations instead of 700: the tests
# allocate fast and keep little, so most collections found nothing to free. About 3 % of
# the suite's CPU (105.7 / 101.0 s against 109.7 / 103.3 s, alternating runs). A test
# that measures collections sets its own thresholds and restores these.
WORKER_GC_THRESHOLDS = (50_000, 20, 100)


@pytest.hookimpl(optionalhook=True)  # the xdist hooks: absent with -p no:xdist
def pytest_xdist_setupnodes(config: pytest.Config) -> None:
    bytecode_cache.fill_for_workers(config)
    rewrite_cache.rewrite_for_workers(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    rewrite_cache.tell_worker(node)
    bytecode_cache.tell_worker(node)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def run_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This run's temp directory, the same for every xdist worker (each worker's own
    base temp is a subdirectory of it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


@pytest.fixture(scope="session", autouse=True)
def child_bytecode_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Where ``PYTHONDONTWRITEBYTECODE`` is set (many CI images set it), the suite's child
    processes (the CLI, ``voicekit serve``, the docs' blocks) read and write bytecode in
    this run's shared directory (``tests/bytecode_cache.py``) instead of each compiling
    voicekit, and whatever else the directory lacks, from source. Nothing changes where
    the variable is not set."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        yield
        return
    prefix = run_temp_dir(tmp_path_factory) / bytecode_cache.DIRECTORY
    bytecode_cache.seed_bytecode_prefix(prefix)  # already done by the controller under xdist
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PYTHONDONTWRITEBYTECODE")
        patch.setenv("PYTHONPYCACHEPREFIX", str(prefix))
        yield


PluginDistFactory = Callable[..., Path]


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginDistFactory]:
    """Create installed-looking distributions (dist-info + module) on ``sys.path``.

    ``plugin_dist("acme", {"acme": "acme_plugin"}, {"acme_plugin": "source"}, requires=[...])``
    makes ``importlib.metadata`` see distribution ``acme`` with those voicekit entry points,
    exactly as pip would have installed it.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    created_modules: list[str] = []

    def make(
        dist: str,
        entry_points: dict[str, str],
        modules: dict[str, str],
        *,
        version: str = "1.0",
        requires: list[str] | None = None,
        extras: list[str] | None = None,
    ) -> Path:
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        meta = ["Metadata-Version: 2.1", f"Name: {dist}", f"Version: {version}"]
        meta += [f"Provides-Extra: {e}" for e in extras or []]
        meta += [f"Requires-Dist: {r}" for r in requires or []]
        (info / "METADATA").write_text("\n".join(meta) + "\n")
        eps = "[voicekit]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(eps)
        for mod, source in modules.items():
            (site / f"{mod}.py").write_text(textwrap.dedent(source))
            created_modules.append(mod)
        invalidate_caches()
        return site

    yield make
    for mod in created_modules:
        sys.modules.pop(mod, None)


@pytest.hookimpl(trylast=True)  # after -k, -m and the like have deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each long real-time call opens a different worker's share of the run, and the
    tests that mostly wait on a real clock come next.

    pytest-xdist's worksteal scheduler hands worker i the i-th contiguous block of the
    collection, and idle workers steal from the end of the others' blocks, so a test at
    the head of a block runs at once on that worker. Put together, the real-time calls
    (marked slow, mostly waiting) would run one after another on one worker and be the
    run's critical path; one at the head of each block, they overlap each other and the
    rest of the suite. The tests marked ``waits`` (a few seconds each of a loopback
    server or a child process) open the other blocks: left where they fall, several
    ended up together at the end of the run, with one worker waiting while the other
    others had finished; placed behind a real-time call, they ran after it.
    """
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return  # one process (-n 0): the order as written, to debug in
    workers = max(1, int(workerinput["workercount"]))
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    waits = [
        item
        for item in items
        if item.get_closest_marker("waits") is not None and item.get_closest_marker("slow") is None
    ]
    early = {id(item) for item in slow + waits}
    rest = [item for item in items if id(item) not in early]
    free = [block for block in range(workers) if block >= len(slow)] or list(range(workers))
    waits_of = {
        block: _rotated(waits[i :: len(free)], i, len(free)) for i, block in enumerate(free)
    }
    ordered: list[pytest.Item] = []
    remaining = len(items)
    for block in range(workers):
        size = remaining // (workers - block)  # as worksteal sizes its blocks
        remaining -= size
        heads = slow[block::workers] + waits_of.get(block, [])
        taken = max(0, size - len(heads))
        ordered += heads + rest[:taken]
        rest = rest[taken:]
    items[:] = ordered + rest


def _rotated(share: list[pytest.Item], i: int, blocks: int) -> list[pytest.Item]:
    """Block ``i``'s share of the waiting tests, started ``i / blocks`` of the way in.
    Dealt round-robin, the n-th waiting test of every block would come from the same
    module (``test_server.py``'s loopback calls, say) and all wait at once; rotated, one
    block's child process computes while another's loopback call waits."""
    start = len(share) * i // max(1, blocks)
    return share[start:] + share[:start]
