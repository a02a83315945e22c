"""Building blocks for CallSession tests: a call wired to fakes on a virtual clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
import trio.testing

from voicekit.audio import ULAW_8K, AudioFormat
from voicekit.config.sections import AgentSettings, TurnSettings
from voicekit.hookspecs import hookimpl
from voicekit.phrases import PhraseCache
from voicekit.plugins import PluginManager
from voicekit.records import CallRecord
from voicekit.session import CallSession
from voicekit.session.responder import ResponderFactory
from voicekit.testing import FakeLLM, FakeMediaStream, FakeSTT, FakeTTS, silence, voice
from voicekit.tools import FunctionTool, tool

CHAR_MS = 60.0  # FakeTTS default: each character is 60 ms of audio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Session tests run on trio with a virtual clock that jumps when all tasks wait."""
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


@dataclass
class Call:
    media: FakeMediaStream
    stt: FakeSTT
    llm: FakeLLM
    tts: FakeTTS
    session: CallSession
    hangups: list[float] = field(default_factory=list)
    hooks: list[tuple[str, Any]] = field(default_factory=list)

    async def say(self, ms: float, then_silence_ms: float = 0.0) -> None:
        """The caller speaks for ``ms`` (one scripted utterance), then is silent."""
        await self.media.say(voice(ms, self.media.inbound_format))
        if then_silence_ms:
            await self.media.say(silence(then_silence_ms, self.media.inbound_format))

    async def quiet(self, ms: float) -> None:
        await self.media.say(silence(ms, self.media.inbound_format))


class RecordingHooks:
    """A plugin observing the call's lifecycle hooks, registered as any plugin is."""

    def __init__(self, sink: list[tuple[str, Any]]) -> None:
        self.sink = sink

    @hookimpl
    def call_started(self, call: Any) -> None:
        self.sink.append(("call_started", call))

    @hookimpl
    def turn_completed(self, call: Any, turn: Any) -> None:
        self.sink.append(("turn_completed", turn))

    @hookimpl
    def call_ended(self, call: Any, record: Any) -> None:
        self.sink.append(("call_ended", record))


def observers(*plugins: object) -> PluginManager:
    """A plugin manager with only ``plugins`` registered."""
    manager = PluginManager()
    for n, plugin in enumerate(plugins):
        manager.register(plugin, name=f"plugin-{n}")
    return manager


def make_call(
    *,
    utterances: list[str] | None = None,
    replies: list[str] | None = None,
    agent: dict[str, Any] | None = None,
    turn: dict[str, Any] | None = None,
    llm: dict[str, Any] | None = None,
    tts: dict[str, Any] | None = None,
    stt: dict[str, Any] | None = None,
    call_format: AudioFormat = ULAW_8K,
    transfer: Callable[[str], Awaitable[None]] | None = None,
    tools: Sequence[FunctionTool] = (),
    responder: ResponderFactory | None = None,
    phrases: PhraseCache | None = None,
) -> Call:
    media = FakeMediaStream(inbound_format=call_format)
    fake_stt = FakeSTT.scripted(utterances or [], **(stt or {}))
    fake_llm = FakeLLM.scripted(replies or [], **(llm or {}))
    fake_tts = FakeTTS.with_options(**(tts or {}))
    agent_settings = AgentSettings(**{"first_speaker": "caller", **(agent or {})})
    turn_settings = TurnSettings(**{"idle_timeout_s": 30.0, **(turn or {})})
    hangups: list[float] = []
    hooks: list[tuple[str, Any]] = []

    async def hangup() -> None:
        hangups.append(anyio.current_time())
        media.hang_up()

    session = CallSession(
        media,
        stt=fake_stt,
        llm=fake_llm,
        tts=fake_tts,
        agent=agent_settings,
        turn=turn_settings,
        hangup=hangup,
        transfer=transfer,
        tools=tools,
        hooks=observers(RecordingHooks(hooks)),
        responder=responder,
        phrases=phrases,
    )
    return Call(media, fake_stt, fake_llm, fake_tts, session, hangups, hooks)


async def run_call(call: Call, script: Callable[[Call], Awaitable[None]]) -> CallRecord:
    """Run the session while ``script`` plays the caller; returns the call record."""
    record: CallRecord | None = None

    async def session() -> None:
        nonlocal record
        record = await call.session.run()

    async with anyio.create_task_group() as tg:
        tg.start_soon(session)
        await script(call)
    assert record is not None
    return record


def words_heard(text: str, played_ms: float) -> str:
    """Ground truth: the whole words of ``text`` (as spoken, one piece after another) whose
    audio had completely played after ``played_ms``."""
    chars = int(played_ms // CHAR_MS + 1e-9)
    spoken = text[:chars]
    if chars < len(text) and not text[chars].isspace():
        spoken = spoken[: max(spoken.rfind(" "), 0)]
    return spoken.strip()


async def until(predicate: Callable[[], object], limit_s: float = 120.0) -> None:
    """Wait (on the virtual clock) until ``predicate()`` is true; fail after ``limit_s``."""
    with anyio.fail_after(limit_s):
        while not predicate():  # noqa: ASYNC110  (polling state that has no event)
            await anyio.sleep(0.01)


def booking_tool() -> tuple[FunctionTool, list[float]]:
    """A ``book_table`` tool and the times it ran."""
    ran: list[float] = []

    @tool(description="Book a table.")
    async def book_table() -> str:
        ran.append(anyio.current_time())
        return "booked"

    return book_table, ran


def goes_on(pause_ms: float, then_silence_ms: float) -> Callable[[Call], Awaitable[None]]:
    """A caller who says a little, pauses ``pause_ms`` (long enough for a guess), goes on
    speaking, then waits ``then_silence_ms`` for the answer and hangs up."""

    async def caller(c: Call) -> None:
        await c.say(400, then_silence_ms=pause_ms)
        await c.say(1000, then_silence_ms=then_silence_ms)
        await until(lambda: c.session.record.turns)
        c.media.hang_up()

    return caller
