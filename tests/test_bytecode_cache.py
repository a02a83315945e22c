"""The suite's shared bytecode directory (tests/bytecode_cache.py) is in effect."""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from pathlib import Path

import pytest

import voicekit.session.session
from tests.bytecode_cache import bytecode_prefix, seed_bytecode_prefix


@pytest.mark.skipif(
    not sys.dont_write_bytecode or "PYTEST_XDIST_WORKER" not in os.environ,
    reason="only xdist workers where PYTHONDONTWRITEBYTECODE is set read shared bytecode",
)
def test_this_worker_reads_the_bytecode_the_controller_compiled() -> None:
    prefix = bytecode_prefix()
    assert prefix is not None, "the controller did not share its directory (an xdist change?)"
    assert sys.pycache_prefix == str(prefix)
    cached = Path(voicekit.session.session.__cached__)
    assert prefix in cached.parents
    deadline = time.monotonic() + 60  # filled while the workers start; this may come first
    while not cached.is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cached.is_file()


def test_the_directory_is_seeded_once_with_links_to_existing_bytecode(tmp_path: Path) -> None:
    source = Path(json.__file__)
    own = source.parent / "__pycache__" / f"{source.stem}.{sys.implementation.cache_tag}.pyc"
    if not own.is_file():
        pytest.skip("this Python's standard library has no bytecode to link")
    if os.stat(tmp_path).st_dev != os.stat(own).st_dev:
        pytest.skip("the temp directory is on another file system: nothing is linked")
    prefix = tmp_path / "bytecode"
    assert seed_bytecode_prefix(prefix)
    assert not seed_bytecode_prefix(prefix)  # someone else's: left alone
    linked = prefix / str(source.parent).lstrip(os.sep) / own.name
    assert linked.stat().st_ino == own.stat().st_ino  # a link, not a copy


def test_where_it_cannot_link_nothing_is_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From another file system a copy of every installed package's bytecode would be
    hundreds of megabytes per run: the directory stays empty instead."""

    def cross_device(source: str, target: str | Path) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    prefix = tmp_path / "bytecode"
    assert not seed_bytecode_prefix(prefix)
    assert prefix.is_dir() and not list(prefix.rglob("*.pyc"))
