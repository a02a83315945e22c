"""One bytecode directory per run for the workers and the tests' child processes, where
Python may not write bytecode beside the sources (``PYTHONDONTWRITEBYTECODE``, which
many CI images set).

Without it every xdist worker compiles voicekit and its plugins from source as it
imports them, and so does every child process the tests start (the CLI, ``voicekit
serve``, the docs' programs): a tenth to a fifth of a second each, some fifty times a
run. With it:

- the controlling process fills a new directory in this run's pytest temp directory, in
  a thread while the workers start: hard links to the bytecode the standard library and
  the installed packages already have in their ``__pycache__`` (about ten thousand files
  in a fifth of a second; where it cannot link, as from another file system, nothing is
  shared with the workers), then the checkout's own packages, compiled;
- each worker is told the directory with its start-up data and reads bytecode from it
  (``sys.pycache_prefix``); it still writes nothing;
- the child processes get it as ``PYTHONPYCACHEPREFIX`` and may write to it, so what
  one compiles the next one reads.

Python checks every file against its source as usual and replaces a stale one with a
new file, never writing through a link. A module imported before the directory is
filled is compiled in memory, as without all this. The checkout gets no ``__pycache__``.
"""

from __future__ import annotations

import os
import py_compile
import sys
import sysconfig
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.controller_work import in_background, run_temp_root

__all__ = [
    "DIRECTORY",
    "bytecode_prefix",
    "fill_for_workers",
    "read_prefix",
    "seed_bytecode_prefix",
    "tell_worker",
]

DIRECTORY = "bytecode"  # in the run's pytest temp directory
WORKER_INPUT_KEY = "shared_bytecode_prefix"
PACKAGE_GLOBS = ("voicekit", "plugins/*/voicekit_*")  # the checkout's importable packages

_prefix: Path | None = None


def bytecode_prefix() -> Path | None:
    """The directory this process reads (a worker) or filled (the controller), if any."""
    return _prefix


def read_prefix(config: pytest.Config) -> None:
    """Call from ``pytest_configure``: a worker reads bytecode from the shared directory."""
    global _prefix
    shared = getattr(config, "workerinput", {}).get(WORKER_INPUT_KEY)
    if shared and sys.dont_write_bytecode:
        _prefix = Path(shared)
        sys.pycache_prefix = shared


def fill_for_workers(config: pytest.Config) -> None:
    """Call from xdist's ``pytest_xdist_setupnodes``: the controller fills the directory
    in a thread while the workers start. Where it cannot hard-link into the run's temp
    directory (another file system, ``fs.protected_hardlinks``), the workers are not told
    of it (with only voicekit in it they would compile every installed package from
    source) and the child processes use it as a plain, empty cache."""
    global _prefix
    root = run_temp_root(config)
    if not sys.dont_write_bytecode or root is None:
        return  # bytecode lives beside the sources, or there is no run directory
    prefix = root / DIRECTORY
    try:
        prefix.mkdir(parents=True)
    except OSError:
        return
    if not _links_work(prefix):
        return

    def fill(stop: threading.Event) -> None:
        if not _seed(prefix, stop):
            return
        for source in _checkout_sources(config.rootpath):
            if stop.is_set():
                return
            try:
                py_compile.compile(
                    str(source),
                    cfile=_cached(prefix, source),
                    doraise=True,
                    optimize=0,  # what the workers and children run, whatever -O pytest has
                    # A hash of the bytes compiled: an edit while this runs is never
                    # stamped on the older code, as a modification time could be.
                    invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
                )
            except (py_compile.PyCompileError, OSError):
                continue  # whoever imports it compiles it, and reports any error in it

    in_background(config, "fill bytecode", fill)
    _prefix = prefix


def tell_worker(node: Any) -> None:
    """Call from xdist's ``pytest_configure_node``: the worker learns the directory with
    its start-up data, not from the environment."""
    if _prefix is not None:
        node.workerinput[WORKER_INPUT_KEY] = str(_prefix)


def seed_bytecode_prefix(prefix: Path) -> bool:
    """Link the standard library's and the installed packages' ``__pycache__/*.pyc`` into
    ``prefix``, where ``PYTHONPYCACHEPREFIX`` looks for them. Only the caller that
    creates ``prefix`` does it; True if it linked them all."""
    try:
        prefix.mkdir(parents=True)
    except FileExistsError:
        return False
    return _links_work(prefix) and _seed(prefix, threading.Event())


def _links_work(prefix: Path) -> bool:
    """Whether the installed bytecode can be hard-linked into ``prefix``: never copied,
    which would be hundreds of megabytes per run."""
    probe = prefix / ".probe"
    try:
        os.link(_some_installed_bytecode(), probe)
    except (OSError, StopIteration):
        return False
    probe.unlink()
    return True


def _some_installed_bytecode() -> str:
    cache = Path(os.__file__).parent / "__pycache__"
    return next(str(p) for p in cache.glob(f"os.{sys.implementation.cache_tag}.pyc"))


def _seed(prefix: Path, stop: threading.Event) -> bool:
    roots = {sysconfig.get_paths()[key] for key in ("stdlib", "purelib", "platlib")}
    suffix = f".{sys.implementation.cache_tag}.pyc"
    try:
        for root in roots:
            _link_bytecode(root, prefix, suffix, roots - {root}, stop)
    except OSError:
        return False  # the rest is compiled by whoever imports it, as without this
    return not stop.is_set()


def _link_bytecode(
    directory: str, prefix: Path, suffix: str, skip: set[str], stop: threading.Event
) -> None:
    if stop.is_set():
        return
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False) or entry.path in skip:
            continue
        if entry.name in ("site-packages", "dist-packages"):
            continue  # the base interpreter's packages under its standard library
        if entry.name != "__pycache__":
            _link_bytecode(entry.path, prefix, suffix, skip, stop)
            continue
        target = prefix / directory.lstrip(os.sep)
        target.mkdir(parents=True, exist_ok=True)
        for pyc in os.scandir(entry.path):
            if pyc.name.endswith(suffix):
                try:
                    os.link(pyc.path, target / pyc.name)
                except FileExistsError:
                    pass  # a child compiled it first


def _checkout_sources(root: Path) -> Iterator[Path]:
    for pattern in PACKAGE_GLOBS:
        for package in sorted(root.glob(pattern)):
            yield from sorted(p for p in package.rglob("*.py") if p.is_file())


def _cached(prefix: Path, source: Path) -> str:
    """Where Python looks for ``source``'s bytecode under ``PYTHONPYCACHEPREFIX``."""
    head = os.path.dirname(os.path.abspath(source)).lstrip(os.sep)
    name = f"{source.stem}.{sys.implementation.cache_tag}.pyc"
    return str(prefix / head / name)
