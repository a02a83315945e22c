"""Shared fixtures: the anyio backend, and fake installed plugin distributions."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import textwrap
from collections.abc import Callable, Iterator
from importlib import invalidate_caches
from pathlib import Path
from typing import Any

import pytest

from tests.rewrite_cache import read_shared_rewrites, rewrite_for_workers, tell_worker


def pytest_configure(config: pytest.Config) -> None:
    read_shared_rewrites(config)


@pytest.hookimpl(optionalhook=True)  # the xdist hooks: absent with -p no:xdist
def pytest_xdist_setupnodes(config: pytest.Config) -> None:
    rewrite_for_workers(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    tell_worker(node)


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
    processes (the CLI, ``voicekit serve``, the docs' blocks) keep compiled bytecode in
    one directory of this run's temp dir, shared by the workers, instead of each child
    compiling voicekit from source again: the checkout still gets no ``__pycache__``.
    Nothing changes where the variable is not set.

    Python then looks for *every* module's bytecode in that directory, the standard
    library's and the virtualenv's too, so the first worker there fills it with links to
    the bytecode they already have: otherwise the first children would each compile
    pydantic, httpx, the openai SDK and the rest from source (1.5 s of CPU each, and
    pip's 371 modules for the one that installs the example plugin)."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        yield
        return
    shared = run_temp_dir(tmp_path_factory) / "child-bytecode"
    seed_bytecode_prefix(shared)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PYTHONDONTWRITEBYTECODE")
        patch.setenv("PYTHONPYCACHEPREFIX", str(shared))
        yield


def seed_bytecode_prefix(prefix: Path) -> None:
    """Hard-link (or copy, across file systems) the standard library's and the installed
    packages' ``__pycache__/*.pyc`` into ``prefix`` where ``PYTHONPYCACHEPREFIX`` looks
    for them (a tenth of a second for ten thousand files). Only the process that creates
    ``prefix`` does it; a child that starts meanwhile compiles what it needs, as without
    this. Python checks each file against its source as usual and replaces a stale one
    with a new file, never writing through the link."""
    try:
        prefix.mkdir(parents=True)
    except FileExistsError:
        return
    roots = {sysconfig.get_paths()[key] for key in ("stdlib", "purelib", "platlib")}
    suffix = f".{sys.implementation.cache_tag}.pyc"
    for root in roots:
        _link_bytecode(root, prefix, suffix, skip=roots - {root})


def _link_bytecode(directory: str, prefix: Path, suffix: str, skip: set[str]) -> None:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False) or entry.path in skip:
            continue
        if entry.name != "__pycache__":
            _link_bytecode(entry.path, prefix, suffix, skip)
            continue
        target = prefix / directory.lstrip(os.sep)
        try:
            target.mkdir(parents=True, exist_ok=True)
            for pyc in os.scandir(entry.path):
                if pyc.name.endswith(suffix):
                    _link(pyc.path, target / pyc.name)
        except OSError:
            continue  # those modules are compiled by the first child that needs them


def _link(source: str, target: Path) -> None:
    try:
        os.link(source, target)
    except FileExistsError:
        pass  # a child compiled it first
    except OSError:  # another file system: a child only ever sees a whole file
        aside = target.with_name(f"{target.name}.{os.getpid()}")
        shutil.copyfile(source, aside)
        os.replace(aside, target)


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
    five had finished; placed behind a real-time call, they ran after it.
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
    waits_of = {block: waits[i :: len(free)] for i, block in enumerate(free)}
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
