"""The ElevenLabs plugin against the loopback emulator, over real sockets."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
import websockets
from voicekit_elevenlabs import ElevenLabsRestTTS, ElevenLabsTTS
from voicekit_elevenlabs.protocol import AudioEvent, FinalEvent, MalformedMessage, parse_message
from voicekit_elevenlabs.settings import ElevenLabsSettings

from voicekit.audio import PCM_16K, ULAW_8K
from voicekit.errors import ProviderAuthError, ProviderError
from voicekit.testing import synthesize
from voicekit.testing.emulators import ElevenLabsEmulator, Faults
from voicekit.tts import AudioChunk

pytestmark = pytest.mark.anyio
KEY = "test-elevenlabs-key"
TEXT = ["Hello there, ", "this is the emulator speaking. ", "Every word counts. "]


def tts_for(el: ElevenLabsEmulator, **options: Any) -> ElevenLabsTTS:
    settings = ElevenLabsSettings.model_validate(
        {"api_key": KEY, "url": el.url, "timeout": 5, **options}
    )
    return ElevenLabsTTS(settings)


async def speak(utterance: Any, pieces: list[str]) -> list[AudioChunk]:
    chunks: list[AudioChunk] = []

    async def collect() -> None:
        async for chunk in utterance:
            chunks.append(chunk)

    async with anyio.create_task_group() as tg:
        tg.start_soon(collect)
        for piece in pieces:
            await utterance.push_text(piece)
            await utterance.flush()
        await utterance.end()
    return chunks


def spoken_text(chunks: list[AudioChunk]) -> str:
    return "".join(c.alignment.text for c in chunks if c.alignment is not None)


async def test_happy_path_streams_audio_with_alignment_and_conforms() -> None:
    async with ElevenLabsEmulator() as el:
        async with tts_for(el).session(ULAW_8K, call_id="call-1") as session:
            chunks = await speak(session.utterance(), TEXT)
    assert spoken_text(chunks) == "".join(TEXT)
    audio = b"".join(c.data for c in chunks)
    assert audio == b"".join(synthesize(p, ULAW_8K, 50.0) for p in TEXT)  # chunks in order
    assert len(audio) == round(len("".join(TEXT)) * 50.0 * 8)  # 50 ms/char of 8 kHz mu-law
    (params,) = el.handshakes
    assert params["output_format"] == "ulaw_8000" and params["model_id"] == "eleven_flash_v2_5"
    assert params["sync_alignment"] == "true" and params["inactivity_timeout"] == "180"
    sent = el.messages("multi-stream-input")
    first = sent[0]
    assert first["text"] == " " and first["context_id"] == "call-1-1"
    assert first["voice_settings"]["stability"] == 0.5
    assert first["generation_config"]["chunk_length_schedule"] == [50, 120, 160, 250]
    assert "xi_api_key" not in first and "xi-api-key" not in first  # the key went in the header
    texts = [m["text"] for m in sent[1:] if m.get("text")]
    assert texts == TEXT and all(t.endswith(" ") for t in texts)
    assert all("voice_settings" not in m for m in sent[1:])
    assert sent[-2:] == [{"context_id": "call-1-1", "close_context": True}, {"close_socket": True}]
    assert sum(1 for m in sent if m.get("flush")) == len(TEXT)  # end() adds none: all flushed


async def test_pcm_output_for_a_pcm_call() -> None:
    async with ElevenLabsEmulator() as el:
        async with tts_for(el).session(PCM_16K) as session:
            chunks = await speak(session.utterance(), ["Short one. "])
    assert el.handshakes[0]["output_format"] == "pcm_16000"
    assert sum(len(c.data) for c in chunks) == round(len("Short one. ") * 50 * 32)


async def test_cancel_closes_the_context_and_delivers_nothing_more() -> None:
    async with ElevenLabsEmulator(
        ms_per_char=50, chars_per_chunk=4, faults=Faults(delay_ms=5)
    ) as el:
        async with tts_for(el).session(ULAW_8K, call_id="c") as session:
            utterance = session.utterance()
            await utterance.push_text("This is a long sentence that will be cut off early. ")
            await utterance.flush()
            received: list[AudioChunk] = []
            async for chunk in utterance:
                received.append(chunk)
                if len(received) == 2:
                    await utterance.cancel()
            assert len(received) == 2
            await anyio.sleep(0.3)  # the emulator keeps sending the flushed audio...
            # ...but none of it reaches the cancelled utterance, and a new one works.
            chunks = await speak(session.utterance(), ["Next reply. "])
            assert spoken_text(chunks) == "Next reply. "
    assert {"context_id": "c-1", "close_context": True} in el.messages()


async def test_reconnect_mid_utterance_speaks_every_word_once() -> None:
    faults = Faults(drop_after=3, drops=1)
    async with ElevenLabsEmulator(chars_per_chunk=10, faults=faults) as el:
        async with tts_for(el).session(ULAW_8K, call_id="r") as session:
            chunks = await speak(session.utterance(), TEXT)
            assert session.reconnects == 1
    assert len(el.connections) == 2 and faults.dropped == 1
    # Every word once and whole; a word the drop cut is said again whole ("th the").
    heard, expected = spoken_text(chunks).split(), "".join(TEXT).split()

    def cut(i: int) -> bool:  # a fragment followed by its whole word
        return i + 1 < len(heard) and heard[i + 1] != heard[i] and heard[i + 1].startswith(heard[i])

    assert [w for i, w in enumerate(heard) if not cut(i)] == expected
    assert len(heard) - len(expected) <= 1  # at most the one word the drop cut
    second = [r.message for r in el.received if r.connection == 2]
    assert second[0]["text"] == " " and "voice_settings" in second[0]
    resent = "".join(m["text"] for m in second[1:] if m.get("text"))
    assert "".join(TEXT).endswith(resent) and len(resent) < len("".join(TEXT))


async def test_refused_key_is_a_non_retryable_auth_error_without_the_key() -> None:
    async with ElevenLabsEmulator(api_key="the-right-key") as el:
        with pytest.raises(ProviderAuthError) as err:
            async with tts_for(el).session(ULAW_8K):
                pass
    assert err.value.status_code == 401 and not err.value.retryable
    assert "ELEVENLABS_API_KEY" in str(err.value) and KEY not in str(err.value)


async def test_input_timeout_surfaces_the_servers_reason() -> None:
    async with ElevenLabsEmulator(inactivity_timeout_s=0.5) as el:
        async with tts_for(el, keepalive_interval_s=30).session(ULAW_8K) as session:
            utterance = session.utterance()
            await utterance.push_text("Hello. ")
            with pytest.raises(ProviderError) as err:
                async for _ in utterance:
                    pass
    assert err.value.status_code == 1008
    assert "Have not received a new text input within the timeout of 0.5 seconds" in str(err.value)


async def test_idle_keepalive_keeps_the_connection_and_never_inits_a_context() -> None:
    async with ElevenLabsEmulator(inactivity_timeout_s=0.3) as el:
        async with tts_for(el, keepalive_interval_s=0.06).session(ULAW_8K) as session:
            await anyio.sleep(0.6)  # twice the server's timeout, with nothing to say
            chunks = await speak(session.utterance(), ["Still here. "])
            await anyio.sleep(0.5)
    assert spoken_text(chunks) == "Still here. "
    assert len(el.connections) == 1
    keepalives = [m for m in el.messages() if m.get("text") == ""]
    assert len(keepalives) >= 4
    initialised: set[str] = set()
    for m in el.messages():
        cid = m.get("context_id")
        if m.get("text") == " ":
            initialised.add(cid)
        elif m.get("text") == "" and cid is not None:
            assert cid in initialised


async def test_malformed_server_messages_are_skipped() -> None:
    async with ElevenLabsEmulator(faults=Faults(malformed_every=2)) as el:
        async with tts_for(el).session(ULAW_8K) as session:
            chunks = await speak(session.utterance(), TEXT)
            assert session.malformed >= 2
    assert spoken_text(chunks) == "".join(TEXT)


async def test_never_more_than_five_contexts() -> None:
    async with ElevenLabsEmulator(faults=Faults(delay_ms=2)) as el:
        async with tts_for(el).session(ULAW_8K, call_id="m") as session:
            utterances = [session.utterance() for _ in range(6)]
            for u in utterances[:5]:
                await u.push_text("Waiting. ")
            sixth_done = anyio.Event()

            async def sixth() -> None:
                await utterances[5].push_text("Sixth. ")
                sixth_done.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(sixth)
                await anyio.sleep(0.2)
                assert not sixth_done.is_set()  # held back: five contexts are open
                await utterances[0].cancel()
                with anyio.fail_after(5):
                    await sixth_done.wait()
            chunks = await speak(utterances[5], [])
    assert spoken_text(chunks) == "Sixth. "
    assert len(el.connections) == 1  # no 1008 for a sixth context


async def test_rest_provider_streams_and_reports_errors() -> None:
    async with ElevenLabsEmulator() as el:
        settings = ElevenLabsSettings.model_validate({"api_key": KEY, "rest_url": el.http_url})
        tts = ElevenLabsRestTTS(settings)
        try:
            async with tts.session(ULAW_8K) as session:
                chunks = await speak(session.utterance(), ["One. ", "Two. "])
            assert sum(len(c.data) for c in chunks) == round(len("One. Two. ") * 50 * 8)
            assert [m["text"] for m in el.messages("rest")] == ["One. ", "Two. "]
            assert el.messages("rest")[1]["previous_text"] == "One. "
            bad = ElevenLabsRestTTS(
                ElevenLabsSettings.model_validate({"api_key": "nope", "rest_url": el.http_url})
            )
            async with bad.session(ULAW_8K) as session:
                utterance = session.utterance()
                await utterance.push_text("Hi. ")
                await utterance.end()
                with pytest.raises(ProviderAuthError):
                    async for _ in utterance:
                        pass
            await bad.aclose()
        finally:
            await tts.aclose()


async def test_stream_input_endpoint_of_the_emulator() -> None:
    """The single-stream endpoint, spoken to directly: key in the first message, the exact
    timeout error, and the empty-text close."""
    async with ElevenLabsEmulator(inactivity_timeout_s=0.5) as el:
        url = f"{el.url}/v1/text-to-speech/v/stream-input?output_format=ulaw_8000"
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"text": " ", "xi_api_key": KEY}))
            await ws.send(json.dumps({"text": "Hi there. ", "flush": True}))
            await ws.send(json.dumps({"text": ""}))
            messages = [json.loads(m) async for m in ws]
        assert messages[-1] == {"isFinal": True} and "audio" in messages[0]
        async with websockets.connect(url, additional_headers={"xi-api-key": KEY}) as ws:
            await ws.send(json.dumps({"text": " "}))
            error = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
        assert error["error"] == "input_timeout_exceeded" and error["code"] == 1008
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        async with websockets.connect(f"{url}&authorization=Bearer%20{KEY}") as ws:
            await ws.send(json.dumps({"text": " "}))
            await ws.send(json.dumps({"text": " ", "voice_settings": {"speed": 1.1}}))
            error = json.loads(await ws.recv())
        assert "voice_settings field must be provided in the first message" in error["message"]


def test_parse_accepts_every_documented_spelling() -> None:
    a = {
        "audio": "AAAA",
        "contextId": "c1",
        "alignment": {"chars": ["a"], "charStartTimesMs": [0], "charDurationsMs": [5]},
    }
    b = {
        "audio": "AAAA",
        "context_id": "c1",
        "normalizedAlignment": {"chars": ["a"], "charStartTimesMs": [0], "charsDurationsMs": [5]},
    }
    for message in (a, b):
        (event,) = parse_message(json.dumps(message))
        assert isinstance(event, AudioEvent) and event.context_id == "c1"
        assert event.alignment is not None and event.alignment.duration_ms == (5,)
    for final in ({"isFinal": True, "contextId": "c"}, {"is_final": True, "context_id": "c"}):
        assert parse_message(json.dumps(final)) == [FinalEvent("c")]
    for bad in ("{not json", '{"audio": "***"}', "[1]", '{"audio": 5}'):
        with pytest.raises(MalformedMessage):
            parse_message(bad)


async def test_emulator_enforces_the_context_limit_and_keepalive_rule() -> None:
    async with ElevenLabsEmulator() as el:
        url = f"{el.url}/v1/text-to-speech/v/multi-stream-input?output_format=ulaw_8000"
        headers = {"xi-api-key": KEY}
        async with websockets.connect(url, additional_headers=headers) as ws:
            for n in range(6):
                await ws.send(json.dumps({"text": " ", "context_id": f"c{n}"}))
            error = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
        assert "maximum of 5 concurrent contexts" in error["message"]
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        async with websockets.connect(url, additional_headers=headers) as ws:
            await ws.send(json.dumps({"text": ""}))  # context-less keepalive: fine
            await ws.send(json.dumps({"context_id": "late", "text": ""}))
            error = json.loads(await ws.recv())
        assert "keepalive before it was initialised" in error["message"]


TOKENS = ["Thanks", " for", " call", "ing", " voice", "kit", ".", " Your", " regu", "lar"]
TOKENS += [" appoint", "ment", " is", " on", " Tues", "day", " at", " three", " o'", "clock"]
TOKENS += [", and", " we", " look", " for", "ward", " to", " see", "ing", " you", " then", "."]


def words(text: str) -> list[str]:
    return text.split()


async def test_llm_tokens_go_out_as_whole_words_each_ending_in_one_space() -> None:
    """push_text takes any fragment: the plugin holds a half word until the rest arrives,
    so no message splits a word, even past the server's 120-character buffer."""
    async with ElevenLabsEmulator() as el:
        async with tts_for(el).session(ULAW_8K, call_id="w") as session:
            utterance = session.utterance()
            chunks: list[AudioChunk] = []

            async def collect() -> None:
                async for chunk in utterance:
                    chunks.append(chunk)

            async with anyio.create_task_group() as tg:
                tg.start_soon(collect)
                for token in TOKENS:
                    await utterance.push_text(token)
                await utterance.end()
    full = "".join(TOKENS)
    texts = [m["text"] for m in el.messages("multi-stream-input")[1:] if m.get("text")]
    assert all(t.endswith(" ") and not t.endswith("  ") for t in texts)
    assert "".join(texts).split() == full.split()  # every word whole, in order, once
    for text in texts:  # no message starts or ends inside a word of the sentence
        assert set(words(text)) <= set(full.split())
    assert len(full) > 120 and spoken_text(chunks).split() == full.split()


async def test_flush_sends_a_half_word_only_when_asked_to() -> None:
    async with ElevenLabsEmulator() as el:
        async with tts_for(el).session(ULAW_8K, call_id="f") as session:
            utterance = session.utterance()
            await utterance.push_text("Hello wor")
            with anyio.fail_after(5):
                while not any(m.get("text") == "Hello " for m in el.messages()):  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            await utterance.push_text("ld")
            await utterance.flush()
            await utterance.cancel()
    texts = [m["text"] for m in el.messages("multi-stream-input")[1:] if m.get("text")]
    assert texts == ["Hello ", "world "]  # "wor" waited for the rest of its word


async def test_a_reconnect_mid_sentence_never_splits_a_word() -> None:
    faults = Faults(drop_after=2, drops=1)
    async with ElevenLabsEmulator(chars_per_chunk=6, faults=faults) as el:
        async with tts_for(el).session(ULAW_8K, call_id="rc") as session:
            utterance = session.utterance()
            chunks: list[AudioChunk] = []

            async def collect() -> None:
                async for chunk in utterance:
                    chunks.append(chunk)

            async with anyio.create_task_group() as tg:
                tg.start_soon(collect)
                for token in ["Please", " accept", " the", " invi", "tation", "."]:
                    await utterance.push_text(token)  # the drop comes in the middle of these
                    await anyio.sleep(0.05)
                await utterance.flush()
                for token in [" ", *TOKENS]:
                    await utterance.push_text(token)
                await utterance.end()
            assert session.reconnects == 1
    vocabulary = set("Please accept the invitation.".split()) | set("".join(TOKENS).split())
    for message in el.messages("multi-stream-input"):
        if message.get("text", " ") != " ":
            assert message["text"].endswith(" ")
            assert set(words(message["text"])) <= vocabulary, message
