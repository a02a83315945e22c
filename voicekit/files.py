"""Files that readers only ever see whole."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["write_whole"]


def write_whole(path: Path, data: bytes) -> None:
    """Write ``path`` so that a reader of its directory (a tail, a collector, another
    server process) never sees half of it: into a new file of a short random hidden name
    (any name that fits as ``path`` fits; unique across threads and forked processes
    sharing the directory), then renamed over ``path``. Nothing is left behind if that
    fails; the error is raised. Permissions are the process's default for new files."""
    while True:
        aside = path.with_name(f".writing-{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(aside, path)
    except BaseException:
        with contextlib.suppress(OSError):
            aside.unlink()
        raise
