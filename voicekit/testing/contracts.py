"""The provider contract as tests: what every STT, TTS and LLM must do, for any caller.

voicekit's own call session happens to use providers gently (whole segments of text,
reading audio until it stops before cancelling); another caller, a third-party pipeline
or a user's script, may not. These base classes test each interface the way any caller
may use it. A provider, first-party or third-party, subclasses the one for its kind in
its own test suite and provides a fixture that yields the provider::

    import pytest
    from voicekit.testing.contracts import TTSContract

    class TestMyTTS(TTSContract):
        @pytest.fixture
        async def tts(self):
            async with MyTTS(MySettings(api_key="test", url=emulator_url)) as tts:
                yield tts

pytest then runs every contract test against it (with the ``anyio`` pytest plugin that
anyio installs). Each class documents the fixtures it needs and the limits it allows
(``timeout_s``: how long any one step may take). The tests run on asyncio, where
voicekit's emulators run; override the ``anyio_backend`` fixture to run them on trio too
(the check that ``aclose`` left no task behind is made on asyncio only).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import anyio
import pytest

from voicekit.audio import AudioFormat
from voicekit.errors import VoiceKitError
from voicekit.llm import LLM, Message, TextDelta, ToolCall, Usage
from voicekit.stt import STT, STTEvent, Transcript
from voicekit.tts import TTS, AudioChunk, TTSSession, Utterance

__all__ = ["LLMContract", "ReconnectCase", "STTContract", "TTSContract"]

# LLM-style fragments: words cut anywhere, spaces leading, punctuation alone.
FRAGMENTS = ["Thanks", " for", " call", "ing", " voice", "kit", ".", " Your", " regu", "lar"]
FRAGMENTS += [" appoint", "ment", " is", " on", " Tues", "day", " at", " three", "."]
LONG_TEXT = "This is a long sentence that keeps going for a while so there is audio. " * 4


def _loop_tasks() -> int | None:
    """Tasks alive on the asyncio loop (None on trio, which has no such count)."""
    if "trio" in sys.modules:
        import trio

        with contextlib.suppress(RuntimeError):
            trio.lowlevel.current_task()
            return None
    return len(asyncio.all_tasks())


async def _no_tasks_left(before: int | None, limit_s: float) -> None:
    """Wait until the loop runs no more tasks than ``before`` (servers in the same
    process may take a moment to finish their side of a closed connection)."""
    if before is None:
        return
    with anyio.move_on_after(limit_s):
        while (_loop_tasks() or 0) > before:  # noqa: ASYNC110
            await anyio.sleep(0.02)
    assert (_loop_tasks() or 0) <= before, "background tasks still running after close"


ProviderT = TypeVar("ProviderT")


@dataclass(frozen=True)
class ReconnectCase(Generic[ProviderT]):
    """A provider whose service drops its connection once while it works, and a count of
    the connections the service has dropped so far: the reconnect tests check it is at
    least one afterwards, so a drop that never happened cannot pass for one survived.

    With a voicekit emulator: ``Faults(drop_after=3, drops=1)`` and ``lambda:
    faults.dropped``. Providers that hold no connection (HTTP per request, in process)
    leave the fixture out and those tests are skipped, saying why.
    """

    provider: ProviderT
    drops: Callable[[], int]


def _reconnect_case(case: ReconnectCase[ProviderT] | None, fixture: str) -> ReconnectCase[Any]:
    if case is None:
        pytest.skip(f"no {fixture} fixture: this provider's reconnects are not checked")
    return case


def _without_cut_words(heard: list[str]) -> list[str]:
    """The words heard, less a fragment said again whole just after it ("th the"): a word
    the service had only half spoken when the connection dropped is repeated whole."""
    return [
        w
        for i, w in enumerate(heard)
        if not (i + 1 < len(heard) and heard[i + 1] != w and heard[i + 1].startswith(w))
    ]


async def _collect(utterance: Utterance, limit_s: float, why: str) -> list[AudioChunk]:
    chunks: list[AudioChunk] = []
    with anyio.fail_after(limit_s, reason=why):
        async for chunk in utterance:
            chunks.append(chunk)
    return chunks


class _Contract:
    timeout_s: ClassVar[float] = 10.0

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"


class TTSContract(_Contract):
    """Contract tests for a TTS provider.

    Fixtures to provide: ``tts`` (the provider, ready to open sessions). Optional:
    ``tts_format`` (default: the provider's first output format); ``reconnecting_tts``
    (a :class:`ReconnectCase` whose service drops the connection once mid-utterance;
    without it the reconnect test is skipped). ``min_ms_per_word`` is the least audio a
    word may take (a provider that drops text fails it).
    """

    min_ms_per_word: ClassVar[float] = 100.0

    @pytest.fixture
    def tts_format(self, tts: TTS) -> AudioFormat:
        return tts.output_formats[0]

    @pytest.fixture
    def reconnecting_tts(self) -> ReconnectCase[TTS] | None:
        return None

    def _check_words(self, chunks: list[AudioChunk], fmt: AudioFormat, words: list[str]) -> None:
        audio = b"".join(c.data for c in chunks)
        assert audio, "no audio for the pushed text"
        assert len(audio) % fmt.block_size == 0, "audio is not whole samples"
        least = len(words) * self.min_ms_per_word
        assert fmt.duration_ms(len(audio)) >= least, (
            f"{fmt.duration_ms(len(audio)):.0f} ms of audio for {len(words)} words: "
            f"text was dropped (at least {least:.0f} ms expected)"
        )

    @contextlib.asynccontextmanager
    async def _session(self, tts: TTS, fmt: AudioFormat) -> AsyncIterator[TTSSession]:
        with anyio.fail_after(self.timeout_s, reason="opening a session took too long"):
            session = await tts.session(fmt, call_id="contract").__aenter__()
        try:
            yield session
        finally:
            with anyio.fail_after(self.timeout_s, reason="closing the session took too long"):
                await session.__aexit__(None, None, None)

    @pytest.mark.anyio
    async def test_any_fragments_become_whole_words_of_audio(
        self, tts: TTS, tts_format: AudioFormat
    ) -> None:
        """push_text takes any fragment: the audio speaks every word, in order (checked
        with alignment when the provider gives it, by duration otherwise)."""
        async with self._session(tts, tts_format) as session:
            utterance = session.utterance()
            for fragment in FRAGMENTS:
                await utterance.push_text(fragment)
            await utterance.end()
            chunks = await _collect(utterance, self.timeout_s, "the audio did not end after end()")
        words = "".join(FRAGMENTS).split()
        self._check_words(chunks, tts_format, words)
        aligned = [c.alignment for c in chunks if c.alignment is not None]
        if aligned:
            spoken = "".join("".join(a.chars) for a in aligned)
            assert spoken.split() == words, f"the alignment says {spoken!r}"

    @pytest.mark.anyio
    async def test_a_connection_dropped_mid_utterance_loses_and_repeats_no_word(
        self, reconnecting_tts: ReconnectCase[TTS] | None, tts_format: AudioFormat
    ) -> None:
        """The service drops the connection while an utterance is being spoken: the audio
        still speaks every word, in order, and none twice (a word the drop cut in half may
        be said again whole); the session goes on to the next utterance."""
        case = _reconnect_case(reconnecting_tts, "reconnecting_tts")
        async with self._session(case.provider, tts_format) as session:
            utterance = session.utterance()
            for fragment in FRAGMENTS:
                await utterance.push_text(fragment)
            await utterance.end()
            chunks = await _collect(utterance, self.timeout_s, "the audio did not end after end()")
            second = session.utterance()
            await second.push_text("Next reply. ")
            await second.end()
            after = await _collect(second, self.timeout_s, "the next utterance hung")
        assert case.drops() >= 1, "the service dropped no connection: nothing was checked"
        words = "".join(FRAGMENTS).split()
        self._check_words(chunks, tts_format, words)
        aligned = [c.alignment for c in chunks if c.alignment is not None]
        if aligned:
            heard = "".join("".join(a.chars) for a in aligned).split()
            assert _without_cut_words(heard) == words, f"the alignment says {heard}"
            assert len(heard) - len(words) <= 1, f"words said twice: {heard}"
        assert after, "no audio for the utterance after the reconnect"

    @pytest.mark.anyio
    async def test_flush_gives_audio_without_end(self, tts: TTS, tts_format: AudioFormat) -> None:
        async with self._session(tts, tts_format) as session:
            utterance = session.utterance()
            await utterance.push_text("Hello there, and welcome. ")
            await utterance.flush()
            with anyio.fail_after(self.timeout_s, reason="no audio after flush() without end()"):
                first = await anext(aiter(utterance))
            assert first.data
            await utterance.end()
            await _collect(utterance, self.timeout_s, "the audio did not end after end()")

    @pytest.mark.anyio
    async def test_no_audio_after_cancel_returns(self, tts: TTS, tts_format: AudioFormat) -> None:
        """Once cancel() has returned, iteration yields nothing more, whatever the provider
        had already received; a new utterance on the same session still works."""
        async with self._session(tts, tts_format) as session:
            utterance = session.utterance()
            await utterance.push_text(LONG_TEXT)
            await utterance.flush()
            audio = aiter(utterance)
            with anyio.fail_after(self.timeout_s, reason="no audio after flush()"):
                await anext(audio)
            await anyio.sleep(0.2)  # let more audio arrive and wait, unread
            await utterance.cancel()
            await utterance.cancel()  # idempotent
            late: list[AudioChunk] = []
            with anyio.fail_after(self.timeout_s, reason="iteration did not end after cancel()"):
                async for chunk in audio:
                    late.append(chunk)
            assert late == [], f"{len(late)} chunks came after cancel()"
            second = session.utterance()
            await second.push_text("Next reply. ")
            await second.end()
            after = await _collect(second, self.timeout_s, "a new utterance after cancel hung")
            assert after, "a new utterance after cancel() gave no audio"

    @pytest.mark.anyio
    async def test_close_from_another_task_is_bounded(
        self, tts: TTS, tts_format: AudioFormat
    ) -> None:
        """aclose() from any task, under a timeout, stops everything the session started;
        an utterance still open ends (or raises a VoiceKitError) instead of hanging."""
        tasks_before = _loop_tasks()
        with anyio.fail_after(self.timeout_s, reason="opening a session took too long"):
            session = await tts.session(tts_format, call_id="contract").__aenter__()
        utterance = session.utterance()
        await utterance.push_text(LONG_TEXT)
        await utterance.flush()

        async def close_elsewhere() -> None:
            with anyio.fail_after(self.timeout_s, reason="aclose() from another task hung"):
                await session.aclose()

        async with anyio.create_task_group() as tg:
            tg.start_soon(close_elsewhere)
        with anyio.fail_after(self.timeout_s, reason="an open utterance hung after aclose()"):
            try:
                async for _ in utterance:
                    pass
            except VoiceKitError:
                pass
        await _no_tasks_left(tasks_before, self.timeout_s)  # aclose() alone stopped them
        with anyio.fail_after(self.timeout_s, reason="__aexit__ after aclose() hung"):
            await session.__aexit__(None, None, None)  # a second close is harmless


class STTContract(_Contract):
    """Contract tests for an STT provider.

    Fixtures to provide: ``stt`` (the provider), ``speech`` (audio in ``stt_format`` that
    the provider recognises as at least one word, ending in a second or more of silence).
    Optional: ``stt_format`` (default: the provider's first input format);
    ``reconnecting_stt`` (a :class:`ReconnectCase` whose service drops the connection
    once while the speech streams in; without it the reconnect test is skipped).
    """

    frame_ms: ClassVar[float] = 20.0
    pace_s: ClassVar[float] = 0.002  # between frames: faster than real time, not a flood

    @pytest.fixture
    def stt_format(self, stt: STT) -> AudioFormat:
        return stt.input_formats[0]

    async def _send(self, stream: Any, audio: bytes, fmt: AudioFormat) -> None:
        size = fmt.bytes_for_ms(self.frame_ms)
        for start in range(0, len(audio), size):
            await stream.send_audio(audio[start : start + size])
            await anyio.sleep(self.pace_s)

    @pytest.fixture
    def reconnecting_stt(self) -> ReconnectCase[STT] | None:
        return None

    @pytest.mark.anyio
    async def test_speech_becomes_a_final_transcript(
        self, stt: STT, stt_format: AudioFormat, speech: bytes
    ) -> None:
        """Audio in, final words out; finalize() makes pending words final and says so."""
        finals = await self._final_words(stt, stt_format, speech)
        assert finals, "no final words"

    @pytest.mark.anyio
    async def test_a_connection_dropped_mid_speech_changes_no_final_word(
        self,
        stt: STT,
        reconnecting_stt: ReconnectCase[STT] | None,
        stt_format: AudioFormat,
        speech: bytes,
    ) -> None:
        """The service drops the connection while the speech streams in: the stream goes
        on, and its final words are the ones the same speech gives without a drop, each
        once (audio the service had not answered for is sent again, and no more)."""
        case = _reconnect_case(reconnecting_stt, "reconnecting_stt")
        expected = await self._final_words(stt, stt_format, speech)
        heard = await self._final_words(case.provider, stt_format, speech)
        assert case.drops() >= 1, "the service dropped no connection: nothing was checked"
        assert heard == expected, f"with a drop: {heard}; without: {expected}"

    async def _final_words(self, stt: STT, stt_format: AudioFormat, speech: bytes) -> list[str]:
        """Stream ``speech``, finalize, close: the final transcripts' words, in order."""
        events: list[STTEvent] = []
        with anyio.fail_after(self.timeout_s, reason="opening a stream took too long"):
            stream = await stt.stream(stt_format, call_id="contract").__aenter__()
        try:

            async def collect() -> None:
                async for event in stream:
                    events.append(event)

            with anyio.fail_after(
                self.timeout_s * 3, reason="the events did not end after aclose()"
            ):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(collect)
                    await self._send(stream, speech, stt_format)
                    with anyio.fail_after(self.timeout_s, reason="finalize() hung"):
                        outcome = await stream.finalize()
                    assert outcome == "finalized", f"finalize() on a live stream: {outcome}"
                    with anyio.fail_after(self.timeout_s, reason="aclose() hung"):
                        await stream.aclose()
        finally:
            with anyio.fail_after(self.timeout_s, reason="__aexit__ after aclose() hung"):
                await stream.__aexit__(None, None, None)
        return [
            w for e in events if isinstance(e, Transcript) and e.is_final for w in e.text.split()
        ]

    @pytest.mark.anyio
    async def test_close_from_another_task_is_bounded_and_ends_the_events(
        self, stt: STT, stt_format: AudioFormat, speech: bytes
    ) -> None:
        tasks_before = _loop_tasks()
        with anyio.fail_after(self.timeout_s, reason="opening a stream took too long"):
            stream = await stt.stream(stt_format, call_id="contract").__aenter__()
        await self._send(stream, speech[: len(speech) // 2], stt_format)

        async def close_elsewhere() -> None:
            with anyio.fail_after(self.timeout_s, reason="aclose() from another task hung"):
                await stream.aclose()

        async with anyio.create_task_group() as tg:
            tg.start_soon(close_elsewhere)
        with anyio.fail_after(self.timeout_s, reason="the events did not end after aclose()"):
            try:
                async for _ in stream:
                    pass
            except VoiceKitError:
                pass
        # After close: sending is a no-op, finalize says nothing was asked.
        await stream.send_audio(speech[: stt_format.bytes_for_ms(self.frame_ms)])
        outcome = await stream.finalize()
        assert outcome == "not_connected", f"finalize() after aclose(): {outcome}"
        await _no_tasks_left(tasks_before, self.timeout_s)  # aclose() alone stopped them
        with anyio.fail_after(self.timeout_s, reason="__aexit__ after aclose() hung"):
            await stream.__aexit__(None, None, None)


class LLMContract(_Contract):
    """Contract tests for an LLM provider.

    Fixtures to provide: ``llm`` (the provider). Optional: ``messages`` (a conversation
    the model answers with some text). ``close_timeout_s`` bounds closing a stream early.
    """

    close_timeout_s: ClassVar[float] = 1.0

    @pytest.fixture
    def messages(self) -> Sequence[Message]:
        return [
            Message("system", "You are a phone assistant. Answer in one short sentence."),
            Message("user", "Hello, are you there?"),
        ]

    @pytest.mark.anyio
    async def test_a_reply_streams_as_text_deltas(
        self, llm: LLM, messages: Sequence[Message]
    ) -> None:
        text = ""
        with anyio.fail_after(self.timeout_s, reason="the reply did not finish in time"):
            async with contextlib.aclosing(llm.stream(messages)) as events:  # type: ignore[type-var]
                async for event in events:
                    assert isinstance(event, TextDelta | ToolCall | Usage), event
                    if isinstance(event, TextDelta):
                        text += event.text
        assert text.strip(), "the reply had no text"

    @pytest.mark.anyio
    async def test_closing_the_stream_early_is_prompt(
        self, llm: LLM, messages: Sequence[Message]
    ) -> None:
        """Barge-in closes the iterator after the first text: that must not wait for the
        rest of the reply, and the provider still answers the next request."""
        events = llm.stream(messages)
        with anyio.fail_after(self.timeout_s, reason="no text from the reply"):
            async for event in events:
                if isinstance(event, TextDelta):
                    break
        started = anyio.current_time()
        with anyio.fail_after(self.close_timeout_s, reason="closing the stream early hung"):
            await events.aclose()  # type: ignore[attr-defined]
        assert anyio.current_time() - started <= self.close_timeout_s
        with anyio.fail_after(self.timeout_s, reason="the next request did not finish"):
            async with contextlib.aclosing(llm.stream(messages)) as again:  # type: ignore[type-var]
                texts = [e async for e in again if isinstance(e, TextDelta)]
        assert texts, "no text from a request made after an abandoned one"
