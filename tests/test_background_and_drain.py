"""Regression tests: background-task failures reach their owner; drain is not fooled by a
call that starts while it waits."""

from __future__ import annotations

import errno
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.session_helpers import anyio_backend  # noqa: F401  (trio, virtual clock)
from voicekit.background import BackgroundTasks
from voicekit.config import load_settings
from voicekit.server import CallManager
from voicekit.telephony import CallInfo
from voicekit.testing import FakeLLM, FakeMediaStream, FakeSTT, FakeTTS

pytestmark = pytest.mark.anyio


async def test_a_failed_background_task_is_reported_to_its_owner() -> None:
    failures: list[Exception] = []

    async def broken() -> None:
        raise KeyError("bug")

    async with BackgroundTasks("test", on_error=failures.append) as tasks:
        tasks.start(broken)
        await anyio.sleep(0.1)
    assert len(failures) == 1 and isinstance(failures[0], KeyError)


async def test_drain_ends_when_the_last_call_ends_even_if_one_started_meanwhile() -> None:
    settings = load_settings(agent={"first_speaker": "caller"})
    calls = CallManager(settings, stt=FakeSTT(), llm=FakeLLM(), tts=FakeTTS())
    first = FakeMediaStream(CallInfo("call-a"))
    second = FakeMediaStream(CallInfo("call-b"))

    async def nothing() -> None:
        return None

    for call_id in ("call-a", "call-b"):  # both answered (as a telephony provider does)
        assert calls.reserve_call(call_id)
    async with anyio.create_task_group() as tg:
        assert calls.admit_media(calls.issue_media_token("call-a")) == "call-a"
        tg.start_soon(lambda: calls.run_call(first, hangup=nothing))
        await anyio.sleep(0.1)
        drained_at: list[float] = []

        async def drain() -> None:
            await calls.drain(60.0)
            drained_at.append(anyio.current_time())

        start = anyio.current_time()
        tg.start_soon(drain)
        await anyio.sleep(0.1)
        # The answered call's media connects while the server drains.
        assert calls.admit_media(calls.issue_media_token("call-b")) == "call-b"
        tg.start_soon(lambda: calls.run_call(second, hangup=nothing))
        await anyio.sleep(1.0)
        first.hang_up()
        await anyio.sleep(1.0)
        second.hang_up()
    assert drained_at and drained_at[0] - start < 5.0  # not the 60 s grace period
    assert {r.call.call_id for r in calls.records} == {"call-a", "call-b"}


def test_a_record_that_cannot_be_serialised_is_logged_not_raised(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    """Writing the record runs in the call's cleanup, before the hang-up: an exception
    there skipped the hang-up and left the caller on a silent line."""
    from voicekit.records import CallRecord

    settings = load_settings(server={"records_dir": str(tmp_path)})
    calls = CallManager(settings, stt=FakeSTT(), llm=FakeLLM(), tts=FakeTTS())
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    record = CallRecord(call=CallInfo("call-x", provider_data={"deep": deep}), started_at=0.0)
    calls._write_file(record)
    assert "could not serialise the call record" in caplog.text and "call-x" in caplog.text


def test_a_record_appears_whole_and_a_failed_write_leaves_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tool reading the records directory while calls end never finds half a record,
    and a disk that fills mid-write leaves no partial file behind."""
    from voicekit.records import CallRecord

    settings = load_settings(server={"records_dir": str(tmp_path)})
    calls = CallManager(settings, stt=FakeSTT(), llm=FakeLLM(), tts=FakeTTS())
    calls._write_file(CallRecord(call=CallInfo("call-w"), started_at=0.0))
    assert [p.name for p in tmp_path.iterdir()] == ["call-w.json"]
    assert json.loads((tmp_path / "call-w.json").read_text())["call"]["call_id"] == "call-w"
    longest = "v" * 250  # the longest id whose record name fits a 255-byte file name
    calls._write_file(CallRecord(call=CallInfo(longest), started_at=0.0))
    assert (tmp_path / f"{longest}.json").is_file()
    (tmp_path / f"{longest}.json").unlink()

    real_fdopen = os.fdopen

    def disk_full(fd: int, mode: str) -> Any:
        out = real_fdopen(fd, mode)

        def write(data: bytes) -> int:
            out.raw.write(data[:100])  # type: ignore[attr-defined]
            raise OSError(errno.ENOSPC, "No space left on device")

        out.write = write  # type: ignore[method-assign]
        return out

    monkeypatch.setattr(os, "fdopen", disk_full)
    calls._write_file(CallRecord(call=CallInfo("call-full"), started_at=0.0))
    assert [p.name for p in tmp_path.iterdir()] == ["call-w.json"]
    assert "could not write the call record" in caplog.text and "call-full" in caplog.text


def test_records_written_at_once_from_many_threads_are_each_whole(tmp_path: Path) -> None:
    """Calls end together, and pre-forked server processes may share one directory: no
    write takes over another's file, and no aside file is left."""
    from voicekit.records import CallRecord

    settings = load_settings(server={"records_dir": str(tmp_path)})
    calls = CallManager(settings, stt=FakeSTT(), llm=FakeLLM(), tts=FakeTTS())

    def write(n: int) -> None:
        for i in range(20):
            call_id = "same" if i % 2 else f"call-{n}-{i}"
            calls._write_file(CallRecord(call=CallInfo(call_id), started_at=float(n)))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 8 * 10 + 1 and not [n for n in names if n.startswith(".")]
    for name in names:
        record = json.loads((tmp_path / name).read_text())
        assert record["call"]["call_id"] == name.removesuffix(".json")
