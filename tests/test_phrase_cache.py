"""The phrase cache: known text plays from stored audio and alignment, with no TTS
round-trip; any change to the voice is a miss; barge-in stays exact on cached speech."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from voicekit_elevenlabs.tts import ElevenLabsTTS

from tests.session_helpers import Call, anyio_backend, make_call, run_call, until, words_heard  # noqa: F401
from voicekit.audio import PCM_16K, ULAW_8K
from voicekit.phrases import PhraseCache, PhraseKey, VoicePhrases
from voicekit.phrases.store import PhraseStore
from voicekit.session.responder import Speech, Turn
from voicekit.telephony import CallInfo
from voicekit.testing import FakeTTS
from voicekit.tts import Alignment, AudioChunk

pytestmark = pytest.mark.anyio

GREETING = "Thanks for calling Bright Smile Dental. How can I help you today?"
VOICE = {"voice_id": "v1", "model_id": "m1"}


@pytest.fixture(autouse=True)
def patient_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Disk reads here are not bounded by wall time: a busy test machine (other workers,
    a profiler) can take longer than the production bound to read a small file, and
    these tests are about what is read. The bound has a test of its own."""
    monkeypatch.setattr("voicekit.phrases.cache.READ_TIMEOUT_S", 60.0)


def chunk(data: bytes, text: str = "") -> AudioChunk:
    chars = tuple(text)
    alignment = Alignment(chars, tuple(range(0, 10 * len(chars), 10)), (10,) * len(chars))
    return AudioChunk(data, alignment if text else None)


def key(text: str = "Hello there.", **changes: Any) -> PhraseKey:
    parts: dict[str, Any] = {"provider": "fake", "voice": VOICE, "fmt": ULAW_8K, "text": text}
    parts.update(changes)
    return PhraseKey.of(parts["provider"], parts["voice"], parts["fmt"], parts["text"])


# -- the key, the memory tier, the disk tier -----------------------------------------------------


def test_a_key_changes_with_every_part_of_the_voice_and_not_with_layout() -> None:
    base = key()
    assert key("  Hello \n there. ") == base and key("  Hello \n there. ").digest == base.digest
    changed = [
        key("Hello there!"),
        key(provider="elevenlabs"),
        key(voice={**VOICE, "voice_id": "v2"}),
        key(voice={**VOICE, "voice_settings": {"stability": 0.6}}),
        key(fmt=PCM_16K),
    ]
    assert len({base.digest, *(k.digest for k in changed)}) == 1 + len(changed)


def phrase(text: str, nbytes: int = 80) -> tuple[AudioChunk, ...]:
    """One aligned chunk speaking ``text``: what the cache accepts."""
    return (chunk(b"\xff" * nbytes, text),)


async def test_a_disk_read_that_hangs_is_a_miss_after_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    release = threading.Event()

    class HungStore(PhraseStore):
        def load(self, key: PhraseKey) -> tuple[AudioChunk, ...] | None:
            release.wait(10)  # a FIFO or a hung network mount
            return super().load(key)

    monkeypatch.setattr("voicekit.phrases.cache.READ_TIMEOUT_S", 0.05)
    cache = PhraseCache(tmp_path)
    assert await cache.save(key(), phrase("Hello there.")) is None
    hung = PhraseCache(tmp_path)
    hung.store = HungStore(tmp_path)
    try:
        with caplog.at_level(logging.WARNING):
            assert await hung.get(key()) is None
        assert hung.stats.misses == 1 and "took too long; a miss" in caplog.text
    finally:
        release.set()


def test_memory_is_bounded_and_evicts_the_least_recently_used() -> None:
    a, b, c = key("a"), key("b"), key("c")
    one = len(b"\xff" * 1000) + 64 + 100  # audio, chunk and alignment overhead
    cache = PhraseCache(memory_bytes=int(2.5 * one))
    assert cache.put(a, phrase("a", 1000)) and cache.put(b, phrase("b", 1000))
    assert cache.cached(a) is not None  # a is now the most recent
    cache.put(c, phrase("c", 1000))
    assert cache.cached(b) is None and cache.cached(a) is not None and cache.cached(c) is not None
    cache.put(key("huge"), phrase("huge", 10_000))  # larger than the whole tier
    assert cache.cached(key("huge")) is None and cache.cached(a) is not None


def test_only_audio_whose_alignment_spells_the_whole_phrase_is_kept() -> None:
    cache = PhraseCache()
    text = "Hello there. Calls are recorded."
    assert not cache.put(key(text), phrase("Hello there."))  # cut short
    assert not cache.put(key(text), (chunk(b"\xff" * 4000),))  # no alignment: unprovable
    half = (chunk(b"\xff" * 80, "Hello there. "), chunk(b"\xff" * 80))
    assert not cache.put(key(text), half)  # one chunk unaligned
    assert not cache.put(key(text), (chunk(b"", text),))  # no audio
    assert cache.stats.stored == 0
    assert cache.put(
        key(text), (chunk(b"\xff" * 80, "Hello there. "), chunk(b"\xff", "Calls are recorded."))
    )


async def test_a_phrase_on_disk_survives_a_restart_with_its_alignment(tmp_path: Path) -> None:
    chunks = (chunk(b"\x01" * 80, "Hello "), chunk(b"\x02" * 40, "there."))
    assert await PhraseCache(tmp_path).save(key(), chunks) is None
    restarted = PhraseCache(tmp_path)
    assert await restarted.get(key()) == chunks
    assert restarted.stats.disk_hits == 1
    assert restarted.cached(key()) == chunks  # promoted to memory
    assert await restarted.get(key(voice={"voice_id": "other"})) is None
    names = [p.name async for p in anyio.Path(tmp_path).iterdir()]
    assert names == [f"{key().digest}.phrase"]  # no side files


async def test_a_background_write_reaches_the_disk(tmp_path: Path) -> None:
    cache = PhraseCache(tmp_path)
    assert cache.put(key(), phrase("Hello there."))  # returns at once: memory now
    cache.close()  # the writer thread finishes its queue
    assert await PhraseCache(tmp_path).get(key()) == phrase("Hello there.")


async def test_a_damaged_foreign_or_forged_file_is_a_miss_not_audio(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import json
    import struct

    from voicekit.phrases.store import MAGIC

    store = PhraseStore(tmp_path)
    good = phrase("Hello there.")
    store.save(key(), good)
    raw = store.path(key()).read_bytes()

    def with_header(header: object) -> bytes:
        blob = json.dumps(header).encode() if not isinstance(header, bytes) else header
        return MAGIC + struct.pack(">I", len(blob)) + blob + b"\xff" * 80

    forged = json.loads(
        raw[len(MAGIC) + 4 : len(MAGIC) + 4 + struct.unpack_from(">I", raw, len(MAGIC))[0]]
    )
    forged["chunks"][0]["alignment"]["chars"] = list("SYSTEM: ok  ")
    cases = {
        "truncated": raw[:-10],
        "trailing bytes": raw + b"\x00",
        "not a phrase file": b"RIFF....WAVEfmt ",
        "empty": b"",
        "a list header": with_header([]),
        "a number header": with_header(1),
        "deep nesting": with_header(b"[" * 100_000 + b"]" * 100_000),
        "chunks not objects": with_header({"key": key().describe(), "chunks": [1]}),
        "no alignment": with_header(
            {"key": key().describe(), "chunks": [{"bytes": 80, "alignment": None}]}
        ),
        "forged alignment": with_header(forged),
    }
    for name, data in cases.items():
        store.path(key()).write_bytes(data)
        assert await PhraseCache(tmp_path).get(key()) is None, name
    # Another phrase's file renamed to this key's name is refused, not played.
    store.save(key("Goodbye."), phrase("Goodbye."))
    store.path(key("Goodbye.")).replace(store.path(key()))
    with caplog.at_level(logging.WARNING):
        assert await PhraseCache(tmp_path).get(key()) is None
    assert "another phrase" in caplog.text
    # An odd byte count for 16-bit audio is refused too.
    pcm_key = key(fmt=PCM_16K)
    store.save(pcm_key, phrase("Hello there."))
    store.path(pcm_key).write_bytes(store.path(pcm_key).read_bytes()[:-1])
    assert await PhraseCache(tmp_path).get(pcm_key) is None


async def test_a_fifo_in_the_cache_directory_is_a_quick_miss(tmp_path: Path) -> None:
    import os

    os.mkfifo(PhraseStore(tmp_path).path(key()))
    started = time.monotonic()  # wall time: these tests run on a virtual clock
    assert await PhraseCache(tmp_path).get(key()) is None
    assert time.monotonic() - started < 2.0


async def test_an_unwritable_directory_keeps_the_phrase_in_memory_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    cache = PhraseCache(blocker)
    with caplog.at_level(logging.WARNING):
        problem = await cache.save(key(), phrase("Hello there."))
    assert problem is not None and problem.startswith(f"cannot write to {blocker}")
    assert cache.cached(key()) is not None
    assert "cannot write" in caplog.text


def test_a_voice_identity_names_the_voice_and_service_and_no_secret() -> None:
    tts = ElevenLabsTTS(
        ElevenLabsTTS.Settings.model_validate(  # type: ignore[attr-defined]
            {"api_key": "sk-very-secret", "voice_id": "abc", "url": "ws://127.0.0.1:9"}
        )
    )
    identity = tts.voice_identity()
    assert identity["voice_id"] == "abc" and "voice_settings" in identity
    assert identity["url"] == "ws://127.0.0.1:9"  # an emulator's audio is not production's
    assert not {"api_key", "rest_url", "timeout", "keepalive_interval_s"} & set(identity)
    assert "sk-very-secret" not in repr(identity)
    # The default: every setting that is not a credential or a request option.
    fake = FakeTTS.with_options(ms_per_char=50).voice_identity()
    assert fake["ms_per_char"] == 50 and "timeout" not in fake and "retry_attempts" not in fake


# -- in a call ------------------------------------------------------------------------------------


def greeting_call(cache: PhraseCache, **tts: Any) -> Call:
    return make_call(
        agent={"first_speaker": "agent", "greeting": GREETING}, phrases=cache, tts=tts or None
    )


async def listen_then_hang_up(c: Call) -> None:
    await until(lambda: c.session.record.turns and c.session.record.turns[0].status != "pending")
    c.media.hang_up()


async def test_a_greeting_is_synthesised_once_then_played_from_the_cache() -> None:
    cache = PhraseCache()
    first = greeting_call(cache)
    first_record = await run_call(first, listen_then_hang_up)
    assert [u.text for u in first.tts.all_utterances] == [GREETING + " "]
    assert cache.stats.stored == 1 and first_record.turns[0].cached_phrases == 0

    second = greeting_call(cache)
    record = await run_call(second, listen_then_hang_up)
    assert second.tts.all_utterances == []  # no TTS round-trip at all
    turn = record.turns[0]
    assert turn.cached_phrases == 1 and turn.status == "played"
    assert turn.agent_text == GREETING and turn.heard_text == GREETING
    assert second.media.played_audio() == first.media.played_audio()  # the same audio
    # Live, the first frame waits for the fake TTS's 150 ms; cached, it goes out at once.
    live = first_record.turns[0]
    assert live.first_frame_sent - live.first_segment == pytest.approx(0.15, abs=1e-6)  # type: ignore[operator]
    assert turn.first_frame_sent - turn.first_segment == pytest.approx(0.0, abs=1e-6)  # type: ignore[operator]
    assert second.session.history.turns[0].content == GREETING


async def test_another_voice_or_format_is_a_miss() -> None:
    cache = PhraseCache()
    await run_call(greeting_call(cache), listen_then_hang_up)
    other_voice = greeting_call(cache, ms_per_char=50)
    await run_call(other_voice, listen_then_hang_up)
    assert [u.text for u in other_voice.tts.all_utterances] == [GREETING + " "]
    other_format = greeting_call(cache, formats=(PCM_16K,))
    await run_call(other_format, listen_then_hang_up)
    assert [u.text for u in other_format.tts.all_utterances] == [GREETING + " "]
    assert cache.stats.stored == 3 and cache.stats.hits == 0


@pytest.mark.parametrize("talk_after_ms", [1130, 2370])
async def test_barge_in_during_a_cached_phrase_keeps_exactly_the_words_heard(
    talk_after_ms: int,
) -> None:
    cache = PhraseCache()
    await run_call(greeting_call(cache), listen_then_hang_up)
    call = make_call(
        utterances=["sorry can I ask something"],
        replies=["Of course."],
        agent={"first_speaker": "agent", "greeting": GREETING},
        phrases=cache,
    )

    async def caller(c: Call) -> None:
        await until(lambda: c.media.sent_frames)
        await anyio.sleep(talk_after_ms / 1000)
        await c.say(700, then_silence_ms=500)
        await until(lambda: len(c.session.record.turns) >= 2)
        c.media.hang_up()

    record = await run_call(call, caller)
    greeting = record.turns[0]
    assert greeting.cached_phrases == 1 and greeting.interrupted
    clear_at = call.media.clears[0]
    truth = words_heard(GREETING + " ", call.media.played_ms(until=clear_at))
    assert truth and truth != GREETING
    assert greeting.heard_text == truth
    assert [m.content for m in call.llm.requests[0] if m.role == "assistant"] == [truth]
    second_start = record.turns[1].first_frame_sent
    assert second_start is not None
    assert all(t <= clear_at or t >= second_start for t, _ in call.media.sent_frames)


async def test_an_interrupted_synthesis_does_not_fill_the_cache() -> None:
    cache = PhraseCache()
    call = make_call(
        utterances=["hello hello hello"],
        replies=["Hi."],
        agent={"first_speaker": "agent", "greeting": GREETING},
        phrases=cache,
        tts={"realtime_factor": 1.0},  # synthesis still running at the barge-in
    )

    async def caller(c: Call) -> None:
        await until(lambda: c.media.sent_frames)
        await anyio.sleep(0.5)
        await c.say(700, then_silence_ms=500)
        await until(lambda: len(c.session.record.turns) >= 2)
        c.media.hang_up()

    record = await run_call(call, caller)
    assert record.turns[0].interrupted
    assert call.tts.all_utterances[0].cancelled
    assert cache.stats.stored == 0  # the greeting was cut off; an LLM answer is never cached
    assert cache.cached(VoicePhrases(cache, **phrase_parts(call)).key(GREETING)) is None


def phrase_parts(call: Call) -> dict[str, Any]:
    return {
        "provider": call.tts.name,
        "voice": call.tts.voice_identity(),
        "fmt": call.session.tts_format,
    }


class MixedResponder:
    """Each reply: a known phrase, the LLM's answer, another known phrase."""

    def __init__(self, call: CallInfo) -> None:
        self.call = call

    def opening(self) -> Turn | None:
        return None

    def reply_to(self, text: str) -> Turn:
        async def turn(speech: Speech) -> None:
            await speech.say("One moment please.", cache=True)
            await speech.answer()
            await speech.say("Anything else?", cache=True)

        return turn

    def state(self) -> Mapping[str, Any]:
        return {}

    def turn_state(self) -> Mapping[str, Any]:
        return {}

    async def aclose(self) -> None:
        pass


async def test_cached_and_live_speech_in_one_reply_play_in_the_order_written() -> None:
    cache = PhraseCache()

    def call() -> Call:
        return make_call(
            utterances=["what time is it"],
            replies=["It is nine o'clock."],
            responder=MixedResponder,
            phrases=cache,
        )

    async def caller(c: Call) -> None:
        await c.say(700, then_silence_ms=500)
        await until(
            lambda: c.session.record.turns and c.session.record.turns[0].status != "pending"
        )
        c.media.hang_up()

    first = call()
    await run_call(first, caller)
    assert [u.text for u in first.tts.all_utterances] == [
        "One moment please. ",
        "It is nine o'clock. ",
        "Anything else? ",
    ]
    second = call()
    record = await run_call(second, caller)
    assert [u.text for u in second.tts.all_utterances] == ["It is nine o'clock. "]
    turn = record.turns[0]
    assert turn.cached_phrases == 2
    expected = "One moment please. It is nine o'clock. Anything else?"
    assert turn.agent_text == expected and turn.heard_text == expected
    assert second.media.played_audio() == first.media.played_audio()


FLOW = {
    "start": "greeting",
    "variables": {"clinic": "Bright Smile", "city": "Springfield"},
    "apology": "Sorry, something went wrong.",
    "nodes": [
        {
            "id": "greeting",
            "script": "Welcome to {{clinic}}. What is your name?",
            "extract": [
                {
                    "name": "name",
                    "pattern": "my name is (\\w+)",
                    "mandatory": True,
                    "reprompt": "Sorry, your name?",
                },
                {"name": "city", "pattern": "from (\\w+)"},
            ],
            "transitions": [{"to": "thanks", "always": True}],
        },
        {
            "id": "thanks",
            "script": "Thanks, {{name}}. We are in {{city}}.",
            "transitions": [{"to": "bye", "always": True}],
        },
        {"id": "bye", "type": "ending", "script": "Goodbye from {{clinic}}, {{caller_number}}."},
    ],
}


def test_a_flows_known_texts_exclude_anything_a_caller_or_call_can_change() -> None:
    from voicekit.flows.load import parse_flow
    from voicekit.flows.phrases import constant_names, flow_phrases

    flow = parse_flow(FLOW, source="test")
    # city is a flow variable, but the greeting node extracts it: it is the caller's.
    assert constant_names(flow) == {"clinic"}
    assert flow_phrases(flow) == [
        "Welcome to Bright Smile. What is your name?",
        "Sorry, your name?",
        "Sorry, something went wrong.",
    ]


async def test_a_flow_engine_marks_only_known_texts_cacheable() -> None:
    from tests.flow_helpers import ScriptedSpeech, engine
    from voicekit.flows.load import parse_flow

    e = engine(parse_flow(FLOW, source="test"))
    opening = e.opening()
    assert opening is not None
    speech = ScriptedSpeech(llm=False)
    await opening(speech)
    await e.reply_to("um")(speech)  # no name: the reprompt
    await e.reply_to("my name is Ann")(speech)
    await e.reply_to("ok")(speech)
    assert speech.said == [
        "Welcome to Bright Smile. What is your name?",
        "Sorry, your name?",
        "Thanks, Ann. We are in Springfield.",
        "Goodbye from Bright Smile, +15550001111.",
    ]
    assert speech.cacheable == [True, True, False, False]


async def test_phrases_warmed_ahead_of_time_play_in_a_call_after_a_restart(
    tmp_path: Path,
) -> None:
    from voicekit.phrases.warm import warm_phrases
    from voicekit.session.negotiate import choose_format

    tts = FakeTTS.with_options()
    fmt = choose_format(ULAW_8K, tts.output_formats)  # what a PCMU call negotiates
    report = await warm_phrases(tts, fmt, [GREETING], PhraseCache(tmp_path))
    assert (report.synthesised, report.already, report.failed) == (1, 0, [])

    call = greeting_call(PhraseCache(tmp_path))  # a new process: memory is empty
    record = await run_call(call, listen_then_hang_up)
    assert call.tts.all_utterances == []
    assert record.turns[0].cached_phrases == 1 and record.turns[0].heard_text == GREETING
