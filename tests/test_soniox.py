"""The Soniox plugin against the loopback emulator, over real sockets."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
import websockets
from voicekit_soniox import SonioxSTT
from voicekit_soniox.settings import SonioxSettings
from voicekit_soniox.tokens import MalformedResponse, TokenState

from tests.session_helpers import until
from voicekit.audio import PCM_16K, ULAW_8K, AudioFormat
from voicekit.errors import ProviderAuthError, ProviderError
from voicekit.stt import EndOfTurn, SpeechStarted, STTEvent, Transcript, TurnLikelyOver
from voicekit.testing import silence, voice
from voicekit.testing.emulators import Faults, SonioxEmulator

pytestmark = pytest.mark.anyio
KEY = "test-soniox-key"


def stt_for(sx: SonioxEmulator, **options: Any) -> SonioxSTT:
    return SonioxSTT(
        SonioxSettings.model_validate({"api_key": KEY, "url": sx.url, "timeout": 5, **options})
    )


async def run(
    stt: SonioxSTT,
    audio: bytes,
    fmt: AudioFormat = ULAW_8K,
    *,
    frame_ms: float = 20,
    pace: float = 0.002,
    call_id: str = "call-7",
) -> list[STTEvent]:
    """Stream ``audio`` in frames (faster than real time), close, return every event."""
    events: list[STTEvent] = []
    async with stt.stream(fmt, call_id=call_id) as stream:

        async def collect() -> None:
            async for event in stream:
                events.append(event)

        async with anyio.create_task_group() as tg:
            tg.start_soon(collect)
            size = fmt.bytes_for_ms(frame_ms)
            for i in range(0, len(audio), size):
                await stream.send_audio(audio[i : i + size])
                await anyio.sleep(pace)
            await stream.aclose()
    return events


def finals(events: list[STTEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, Transcript) and e.is_final]


def turns(*words_ms: int, fmt: AudioFormat = ULAW_8K, gap_ms: int = 800) -> bytes:
    return b"".join(voice(ms, fmt) + silence(gap_ms, fmt) for ms in words_ms)


async def test_happy_path_partials_finals_and_end_of_turn() -> None:
    async with SonioxEmulator(utterances=["book a table for two", "at seven"]) as sx:
        events = await run(stt_for(sx), turns(1000, 500))
    assert finals(events) == ["book a table for two", "at seven"]
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "SpeechStarted" and kinds.count("EndOfTurn") == 2
    partials = [e.text for e in events if isinstance(e, Transcript) and not e.is_final]
    assert partials[:3] == ["book", "book a", "book a table"]  # revised as words arrive
    end = next(e for e in events if isinstance(e, EndOfTurn))
    assert end.end_ms == pytest.approx(1000, abs=20)  # the speech end, in audio time
    (config,) = sx.configs
    assert config == {
        "model": "stt-rt-v5",
        "audio_format": "mulaw",
        "sample_rate": 8000,
        "num_channels": 1,
        "language_hints": ["en"],
        "enable_endpoint_detection": True,
        "max_endpoint_delay_ms": 800,
        "client_reference_id": "call-7",
    }
    assert "api_key" not in config  # the key went in the Authorization header
    assert sx.streams[0].audio_bytes == len(turns(1000, 500))  # every byte, untouched


async def test_send_ms_sends_the_audio_in_pieces_and_every_byte_once() -> None:
    """60 ms pieces of 20 ms frames: a third of the messages, the same bytes in the same
    order, the same words; what is held when the audio ends is sent before its end."""
    audio = turns(1000, 500)  # 3,100 ms: 155 frames, 51 whole pieces and 2 frames left
    async with SonioxEmulator(utterances=["book a table for two", "at seven"]) as sx:
        events = await run(stt_for(sx, send_ms=60), audio)
    assert finals(events) == ["book a table for two", "at seven"]
    assert sx.streams[0].audio_bytes == len(audio)
    assert sx.streams[0].audio_messages == 52


async def test_a_finalize_sends_the_held_audio_first() -> None:
    async with SonioxEmulator(utterances=["one two three"], endpoint_ms=3000) as sx:
        async with stt_for(sx, send_ms=100).stream(ULAW_8K) as stream:
            speech = voice(700, ULAW_8K)
            for i in range(0, len(speech), 160):
                await stream.send_audio(speech[i : i + 160])
            held = len(speech) % ULAW_8K.bytes_for_ms(100)
            await until(lambda: sx.streams[0].audio_bytes == len(speech) - held)
            with anyio.fail_after(5):
                assert await stream.finalize() == "finalized"
            assert sx.streams[0].audio_bytes == len(speech)  # before the finalize message
            assert sx.streams[0].controls[-1] == {"type": "finalize"}


async def test_pcm_and_legacy_key_in_config() -> None:
    async with SonioxEmulator(utterances=["hello"]) as sx:
        events = await run(stt_for(sx, api_key_in_config=True), turns(400, fmt=PCM_16K), PCM_16K)
    assert finals(events) == ["hello"]
    assert sx.configs[0]["audio_format"] == "pcm_s16le" and sx.configs[0]["sample_rate"] == 16000
    assert sx.configs[0]["api_key"] == KEY


async def test_finalize_completes_on_fin() -> None:
    async with SonioxEmulator(utterances=["one two three"], endpoint_ms=3000) as sx:
        async with stt_for(sx).stream(ULAW_8K) as stream:
            events: list[STTEvent] = []

            async def collect() -> None:
                async for event in stream:
                    events.append(event)

            async with anyio.create_task_group() as tg:
                tg.start_soon(collect)
                for i in range(0, len(voice(700, ULAW_8K)), 160):
                    await stream.send_audio(voice(700, ULAW_8K)[i : i + 160])
                with anyio.fail_after(5):
                    assert await stream.finalize() == "finalized"
                await stream.aclose()
                assert await stream.finalize() == "not_connected"  # closed: nothing asked
    assert [c for c in sx.streams[0].controls if c.get("type") == "finalize"] == [
        {"type": "finalize"}
    ]
    assert finals(events) == ["one two three"]


async def test_finalize_says_when_soniox_did_not_confirm_in_time() -> None:
    async with SonioxEmulator(utterances=["one"], faults=Faults(delay_ms=200)) as sx:
        async with stt_for(sx, timeout=0.05).stream(ULAW_8K) as stream:
            await stream.send_audio(voice(300, ULAW_8K))
            assert await stream.finalize() == "timed_out"


async def test_audio_sent_during_a_reconnect_goes_out_once_and_in_order() -> None:
    """send_audio keeps being called while the replay is sent (the deque it appends to
    was iterated with awaits in between): nothing is lost, doubled or reordered."""
    faults = Faults(drop_after=3, drops=1, delay_ms=0)
    audio = turns(600, 600)
    async with SonioxEmulator(utterances=["first turn here", "second one"], faults=faults) as sx:
        events = await run(stt_for(sx), audio, pace=0.0005)  # sends race the replay
    assert faults.dropped == 1
    assert finals(events) == ["first turn here", "second one"]
    replayed = sx.streams[0].audio_bytes + sx.streams[1].audio_bytes - len(audio)
    assert 0 <= replayed <= len(audio)


async def test_a_reconnect_replays_no_more_than_replay_s_of_audio() -> None:
    """A long turn with no final word yet when the socket drops: the replay is the last
    ``replay_s`` of audio exactly, however the per-frame bookkeeping batches its trims,
    and what is held meanwhile stays bounded."""
    faults = Faults(drop_after=15, drops=1)  # a partial every 200 ms: about 3 s in
    audio = voice(4000, ULAW_8K)  # four seconds of speech, nothing final until its end
    words = " ".join(f"word{n}" for n in range(20))
    async with SonioxEmulator(utterances=[words], endpoint_ms=3000, faults=faults) as sx:
        stt = stt_for(sx, replay_s=0.5)
        async with stt.stream(ULAW_8K) as stream:
            for i in range(0, len(audio), 160):
                await stream.send_audio(audio[i : i + 160])
                held = sum(len(a) for *_, a in stream._replay)  # type: ignore[attr-defined]
                assert held <= ULAW_8K.bytes_for_ms(500 + 1000 + 20)
                await anyio.sleep(0.0005)
            await until(lambda: len(sx.streams) == 2, limit_s=5)
        # Closing waited for Soniox's "finished": every byte sent has been counted.
    assert faults.dropped == 1
    replayed = sx.streams[0].audio_bytes + sx.streams[1].audio_bytes - len(audio)
    assert 0 < replayed <= ULAW_8K.bytes_for_ms(500)


@pytest.mark.parametrize("drop_after", [2, 5])
async def test_reconnect_mid_speech_transcribes_every_word_once(drop_after: int) -> None:
    """Dropped inside the first utterance (2) or inside the second, after the first's
    finals (5): every word is final exactly once either way."""
    faults = Faults(drop_after=drop_after, drops=1)
    audio = turns(600, 1200)
    async with SonioxEmulator(
        utterances=["first turn here", "please call me back tomorrow"], faults=faults
    ) as sx:
        events = await run(stt_for(sx), audio)
    assert faults.dropped == 1 and len(sx.streams) == 2
    assert finals(events) == ["first turn here", "please call me back tomorrow"]
    assert sum(isinstance(e, EndOfTurn) for e in events) == 2
    assert sx.streams[1].config["client_reference_id"] == "call-7"
    replayed = sx.streams[0].audio_bytes + sx.streams[1].audio_bytes - len(audio)
    if drop_after == 5:
        # Replay starts where the first turn's finals end, not at the start of the call.
        assert replayed < len(audio) // 2 and sx.streams[1].audio_bytes < len(audio) - 4800


async def test_refused_key_is_a_non_retryable_auth_error() -> None:
    async with SonioxEmulator(api_key="right-key") as sx:
        with pytest.raises(ProviderAuthError) as err:
            async with stt_for(sx).stream(ULAW_8K):
                pass
    assert err.value.status_code == 401 and "SONIOX_API_KEY" in str(err.value)
    assert KEY not in str(err.value)


async def test_bad_config_error_code_surfaces() -> None:
    async with SonioxEmulator() as sx:
        stream = stt_for(sx, model="stt-rt-v99").stream(ULAW_8K)
        async with stream:
            with pytest.raises(ProviderError, match="Invalid model specified") as err:
                async for _ in stream:
                    pass
    assert err.value.status_code == 400 and not err.value.retryable


async def test_keepalive_when_no_audio_flows() -> None:
    async with SonioxEmulator(idle_timeout_s=0.3) as sx:
        async with stt_for(sx, keepalive_s=0.06).stream(ULAW_8K) as stream:
            await stream.send_audio(silence(20, ULAW_8K))
            await anyio.sleep(0.7)  # more than twice the server's idle limit
            await stream.send_audio(silence(20, ULAW_8K))
    keepalives = [c for c in sx.streams[0].controls if c == {"type": "keepalive"}]
    assert len(keepalives) >= 4 and len(sx.streams) == 1


async def test_idle_connection_is_closed_by_the_emulator_without_keepalive() -> None:
    async with SonioxEmulator(idle_timeout_s=0.15) as sx:
        stream = stt_for(sx, keepalive_s=15).stream(ULAW_8K)
        async with stream:
            with pytest.raises(ProviderError, match="no audio or keepalive") as err:
                async for _ in stream:
                    pass
        assert err.value.status_code == 408 and err.value.retryable


async def test_malformed_responses_are_skipped() -> None:
    async with SonioxEmulator(
        utterances=["alpha beta gamma"], faults=Faults(malformed_every=2)
    ) as sx:
        stt = stt_for(sx)
        events = await run(stt, turns(700))
    assert finals(events) == ["alpha beta gamma"]


async def test_emulator_accepts_subprotocol_auth_and_rejects_bad_format() -> None:
    async with SonioxEmulator(utterances=["hi"]) as sx:
        async with websockets.connect(sx.url, subprotocols=["soniox-api-key", KEY]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"model": "stt-rt-v5", "audio_format": "pcm_s16le"}))
            reply = json.loads(await ws.recv())
        assert reply["error_code"] == 400 and "sample_rate" in reply["error_message"]


def test_token_state_handles_both_markers_and_offsets() -> None:
    state = TokenState(offset_ms=1000)
    events = state.feed(
        json.dumps(
            {"tokens": [{"text": " hel", "start_ms": 100, "end_ms": 200, "is_final": False}]}
        )
    )
    assert isinstance(events[0], SpeechStarted) and events[0].start_ms == 1100
    events = state.feed(
        json.dumps(
            {
                "tokens": [
                    {
                        "text": "hello",
                        "start_ms": 100,
                        "end_ms": 400,
                        "is_final": True,
                        "confidence": 0.9,
                    },
                    {"text": "<end>", "is_final": True},
                ],
                "final_audio_proc_ms": 400,
            }
        )
    )
    assert events[0] == Transcript("hello", True, 1100, 1400, 0.9)
    assert events[1] == EndOfTurn(1400) and state.final_ms == 1400
    state.feed(json.dumps({"tokens": [{"text": "<fin>", "is_final": True}], "finished": True}))
    assert state.fin and state.finished
    with pytest.raises(MalformedResponse):
        state.feed('{"tokens": 5}')
    with pytest.raises(ProviderError) as err:
        state.feed(
            json.dumps(
                {
                    "error_code": 503,
                    "error_message": "Cannot continue request (code 1). Please restart the request.",
                }
            )
        )
    assert err.value.retryable


class SlowSocket:
    """A connection whose sends yield to other tasks (as a full send buffer makes a real
    one do), and which drops when told to."""

    def __init__(self) -> None:
        self.sent: list[bytes | str] = []
        self.dropped = anyio.Event()
        self.ended = anyio.Event()
        self.close_code: int | None = None
        self.close_reason = ""

    async def send(self, data: bytes | str) -> None:
        if self.dropped.is_set():
            raise websockets.ConnectionClosed(None, None)
        self.sent.append(data)
        if data == b"":
            self.ended.set()
        await anyio.sleep(0.002)

    def __aiter__(self) -> Any:
        return self._messages()

    async def _messages(self) -> Any:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._wait_and_cancel, self.dropped, tg)
            tg.start_soon(self._wait_and_cancel, self.ended, tg)
        if self.ended.is_set():
            yield json.dumps({"tokens": [], "finished": True})
            return
        self.close_code = 1006
        raise websockets.ConnectionClosed(None, None)

    @staticmethod
    async def _wait_and_cancel(event: anyio.Event, tg: Any) -> None:
        await event.wait()
        tg.cancel_scope.cancel()

    async def close(self) -> None:
        self.dropped.set()


async def test_audio_sent_while_a_replay_is_under_way_goes_out_once_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """send_audio appends to the replay buffer while the reconnect is still sending it:
    every frame reaches the new connection exactly once, in order, after the config."""
    import voicekit.persistent as stream_module

    sockets: list[SlowSocket] = []

    async def connect(*args: Any, **kwargs: Any) -> SlowSocket:
        sockets.append(SlowSocket())
        return sockets[-1]

    monkeypatch.setattr(stream_module, "connect_websocket", connect)
    frames = [bytes([n]) * 160 for n in range(1, 61)]  # 1.2 s, each frame recognisable
    stt = SonioxSTT(SonioxSettings.model_validate({"api_key": KEY, "url": "ws://unused"}))
    async with stt.stream(ULAW_8K, call_id="r") as stream:
        for frame in frames[:30]:
            await stream.send_audio(frame)
        sockets[0].dropped.set()
        for frame in frames[30:]:
            await stream.send_audio(frame)
            await anyio.sleep(0.001)
        with anyio.fail_after(5):
            while len(sockets) < 2 or len(sockets[1].sent) < 61:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        assert stream.reconnects == 1
    second = sockets[1].sent
    assert json.loads(second[0])["model"]  # the config first
    audio = [m for m in second[1:61] if isinstance(m, bytes)]
    assert audio == frames  # nothing final yet: all of it, once, in order


async def test_words_final_before_the_endpoint_say_the_turn_is_likely_over() -> None:
    """Soniox finalizes words before it decides on an endpoint: all final, then quiet
    audio, is the likely-over signal; once per last word, and never without words."""
    async with SonioxEmulator(
        utterances=["what are your hours on sunday"], final_after_ms=60
    ) as sx:
        # "what are your hours", a pause of 300 ms (likely over), "on sunday", the endpoint
        audio = voice(600, ULAW_8K) + silence(300, ULAW_8K) + turns(400)
        events = await run(stt_for(sx, likely_over_ms=100), audio)
    kinds = [type(e).__name__ for e in events]
    likely = [e for e in events if isinstance(e, TurnLikelyOver)]
    assert [e.text for e in likely] == ["what are your hours", "what are your hours on sunday"]
    assert kinds.count("EndOfTurn") == 1 and kinds[-1] == "EndOfTurn"
    # Every final word once: the early finals, then the rest.
    assert finals(events) == ["what are your hours", "on sunday"]
    assert likely[0].end_ms is not None and likely[0].end_ms <= 600


def test_token_state_reports_likely_over_once_per_final_word() -> None:
    state = TokenState(likely_over_ms=100)
    word = {"text": "hi", "start_ms": 0, "end_ms": 300, "is_final": True}
    assert [
        type(e) for e in state.feed(json.dumps({"tokens": [word], "total_audio_proc_ms": 340}))
    ] == [
        SpeechStarted,
        Transcript,
    ]
    quiet = json.dumps({"tokens": [], "total_audio_proc_ms": 420})
    (event,) = state.feed(quiet)
    assert event == TurnLikelyOver("hi", 300)
    assert state.feed(quiet) == []  # once
    pending = {"text": " there", "start_ms": 430, "end_ms": 500, "is_final": False}
    assert not any(
        isinstance(e, TurnLikelyOver)
        for e in state.feed(json.dumps({"tokens": [pending], "total_audio_proc_ms": 900}))
    )  # a word not yet final: not over
    state.feed(json.dumps({"tokens": [{"text": "<end>", "is_final": True}]}))
    assert state.turn_words == []
    assert state.feed(json.dumps({"tokens": [], "total_audio_proc_ms": 2000})) == []


@pytest.mark.parametrize(
    "token",
    [
        {"text": "hi", "is_final": True, "confidence": "high"},
        {"text": "hi", "is_final": True, "confidence": True},
        {"text": ["hi"], "is_final": True},
        {"text": {"a": 1}, "is_final": False},
    ],
)
def test_a_token_of_the_wrong_type_is_a_malformed_response(token: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponse):
        TokenState().feed(json.dumps({"tokens": [token]}))


def test_a_null_confidence_is_no_confidence() -> None:
    (_, final) = TokenState().feed(
        json.dumps({"tokens": [{"text": "hi", "is_final": True, "confidence": None}]})
    )
    assert final == Transcript("hi", is_final=True, confidence=None)


def test_soniox_words_it_takes_back_do_not_stay_in_the_turn() -> None:
    """Soniox revises non-final tokens; one that disappears without becoming final was
    taken back: an empty partial says so, and the likely-over signal that follows counts."""
    from voicekit.session.caller import CallerTurns

    state, caller = TokenState(), CallerTurns()
    likely = []
    for response in (
        {
            "tokens": [{"text": "what", "is_final": True, "start_ms": 0, "end_ms": 200}],
            "total_audio_proc_ms": 250,
        },
        {
            "tokens": [{"text": " hours", "is_final": False, "start_ms": 300, "end_ms": 500}],
            "total_audio_proc_ms": 500,
        },
        {"tokens": [], "total_audio_proc_ms": 900},  # "hours" taken back
    ):
        for event in state.feed(json.dumps(response)):
            if isinstance(event, Transcript | SpeechStarted):
                caller.hear(event)
            elif isinstance(event, TurnLikelyOver):
                likely.append(caller.partial)
    assert likely == [""], f"likely over with a pending partial {likely}"
    assert caller.text == "what", caller.text
