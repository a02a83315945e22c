"""``voicekit simulate``: a whole phone call on this machine, over the real protocols.

The server runs in this process on loopback with the configured STT, LLM and TTS (or
their emulators); the Telnyx REST API is emulated, and the phone simulator rings the
server with a signed webhook, opens the media stream and speaks the caller's lines in
real time, each after the agent's turn is over. Nothing leaves the machine unless the
configured providers are cloud ones, and no telephony key is needed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from voicekit.audio import PCM_16K, ULAW_8K, AudioConverter, AudioFormat, read_wav
from voicekit.audio.wav import first_channel
from voicekit.config.resolve import create_provider
from voicekit.config.settings import NO_LLM, VoiceKitSettings
from voicekit.errors import ConfigError
from voicekit.flows.builtin import with_builtin_flow
from voicekit.hookspecs import hookimpl
from voicekit.phrases import PhraseCache
from voicekit.phrases.warm import WarmReport
from voicekit.plugins import PluginManager, load_plugins
from voicekit.records import CallRecord
from voicekit.simulate.emulate import emulated_providers
from voicekit.telephony import Telephony
from voicekit.testing.emulators import LoopbackServer, TelnyxEmulator
from voicekit.testing.phone import PhoneSimulator, SimulatedCall
from voicekit.testing.recording import LineRecording
from voicekit.tts import TTS, speak

__all__ = ["DEFAULT_LINES", "SimulationResult", "simulate"]

logger = logging.getLogger(__name__)

# The caller's side of a walk through the built-in front desk flow.
# (Chosen so the offline recognizer hears them: it takes "Tuesday" for "to state".)
DEFAULT_LINES = [
    "What are your opening hours?",
    "Where is your office?",
    "I would like to book an appointment.",
    "Friday, please.",
    "Thank you, goodbye.",
]
CALLER_VOICE = "local"  # the TTS that speaks the caller's lines
AGENT_FIRST_AUDIO_S = 20.0  # how long the caller waits for the agent to say anything


@dataclass
class SimulationResult:
    record: CallRecord | None = None
    heard_at: list[float | None] = field(default_factory=list)  # per caller line
    recording: LineRecording | None = None
    call_format: AudioFormat = ULAW_8K


class _Transcript:
    """Prints the call as it happens: what the STT heard, what the agent said (when its
    reply has played), the node. Times count from the command's start."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.started = time.monotonic()
        self.record: CallRecord | None = None
        self.ended = anyio.Event()
        self._printed = 0

    def _say(self, line: str) -> None:
        self.out(f"[{time.monotonic() - self.started:5.1f}s] {line}")

    def poll(self, session: Any) -> None:
        entries = session.record.transcript[self._printed :]
        for entry in entries:
            if entry.role == "user":
                self._say(f"caller (STT heard): {entry.text}")
        self._printed += len(entries)

    @hookimpl
    def turn_completed(self, call: Any, turn: Any) -> None:
        node = (turn.flow or {}).get("node")
        where = f"  [node {node}]" if node else ""
        heard = turn.heard_text or "(nothing)"
        cut = " (interrupted)" if turn.interrupted else ""
        self._say(f"agent: {heard}{cut}{where}")

    @hookimpl
    def call_ended(self, call: Any, record: CallRecord) -> None:
        self.record = record
        self.ended.set()


def _wav_audio(path: Path, fmt: AudioFormat) -> bytes:
    """The caller's audio in ``path``, in the call's format. A stereo file is taken to be
    a ``--record`` recording: its left channel (the caller) is played."""
    wav_fmt, audio = first_channel(*read_wav(path))
    converter = AudioConverter(wav_fmt, fmt)
    return converter.process(audio) + converter.flush()


# How long the caller waits, after the opening, for the phrase cache to finish warming:
# less than the agent's idle prompt, which a caller keeping quiet longer would hear.
WARM_WAIT_S = 3.0


async def _speak_lines(
    call: SimulatedCall, utterances: list[bytes], agent_first: bool, warmed: anyio.Event
) -> list[float | None]:
    """Speak each line once the agent's turn before it is over. The first also waits for
    the phrase cache, which warms while the opening plays, so the caller's turns find it
    warm as on a server with a warmed cache directory; but for ``WARM_WAIT_S`` at most
    (a phrase not ready by then is synthesised live), and not once the call is over."""
    heard: list[float | None] = []
    since = anyio.current_time()
    if agent_first:
        await call.agent_turn_over(since, first_audio_s=AGENT_FIRST_AUDIO_S)
    else:
        await call.wait(0.5)
    with anyio.move_on_after(WARM_WAIT_S):
        while not warmed.is_set() and call.closed_code is None:  # noqa: ASYNC110
            await anyio.sleep(0.05)
    for audio in utterances:
        if call.closed_code is not None:
            break
        report = await call.say(audio)
        await call.agent_turn_over(report.ended_at, first_audio_s=AGENT_FIRST_AUDIO_S)
        heard.append(report.agent_started_at)
    return heard


async def simulate(
    settings: VoiceKitSettings,
    *,
    lines: list[str] | None = None,
    wavs: list[Path] | None = None,
    record: bool = False,
    emulate: bool = False,
    out: Callable[[str], None] = print,
    plugins: PluginManager | None = None,
) -> SimulationResult:
    """Run one simulated call; returns its record (and the recording, with ``record``)."""
    from voicekit.server import create_app

    settings = with_builtin_flow(settings)
    if emulate:  # an emulator's audio must not land in a real phrase cache directory
        server = settings.server.model_copy(update={"phrase_cache_dir": None})
        settings = settings.model_copy(update={"server": server})
    manager = plugins or load_plugins()
    registry = manager.registry
    wavs = list(wavs or [])
    texts = list(lines) if lines else ([] if wavs else list(DEFAULT_LINES))
    for n, text in enumerate(texts, 1):
        if not any(ch.isalnum() for ch in text):
            raise ConfigError(f"--say line {n} ({text!r}) has no word to say")
    transcript = _Transcript(out)
    manager.register(transcript, name="voicekit-simulate")
    async with AsyncExitStack() as stack:
        given = await emulated_providers(settings, registry, texts, stack) if emulate else {}
        stt = given.get("stt") or create_provider(settings, "stt", plugins=manager)
        tts = given.get("tts") or create_provider(settings, "tts", plugins=manager)
        llm = given.get("llm")
        if llm is None and settings.llm.provider != NO_LLM:
            llm = create_provider(settings, "llm", plugins=manager)
        fmt = PCM_16K if PCM_16K in stt.input_formats else ULAW_8K
        recorded = [_wav_audio(w, fmt) for w in wavs]  # a bad file fails before the call
        utterances = []
        if texts:
            voice = create_provider(_caller_settings(), "tts", plugins=manager)
            out(f"synthesising {len(texts)} caller line(s) with the local voice...")
            utterances = [await speak(voice, t, fmt) for t in texts]
        utterances += recorded

        telnyx = await stack.enter_async_context(TelnyxEmulator())
        phone = await stack.enter_async_context(PhoneSimulator("http://placeholder", telnyx))
        loopback = LoopbackServer(lifespan=True)
        server = settings.server.model_copy(
            update={"public_url": loopback.http_url, "shutdown_grace_s": 1.0}
        )
        settings = settings.model_copy(update={"server": server})
        loopback.limits = settings.server
        telephony = registry.instantiate(
            "telephony",
            "telnyx",
            registry.settings(
                "telephony",
                "telnyx",
                {
                    "api_key": telnyx.api_key,
                    "public_key": phone.public_key,
                    "base_url": telnyx.url,
                    "codec": "L16" if fmt == PCM_16K else "PCMU",
                    "connection_id": "simulator",
                    "from_number": "+15550009999",
                },
                source="voicekit simulate",
            ),
        )
        assert isinstance(telephony, Telephony)
        app = create_app(settings, plugins=manager, stt=stt, llm=llm, tts=tts, telephony=telephony)
        loopback.app = app
        calls = app.state.calls
        out(
            f"calling the agent: stt={stt.name} llm={llm.name if llm else NO_LLM} "
            f"tts={tts.name}, line {fmt}"
        )
        result = SimulationResult(call_format=fmt)
        warmed = anyio.Event()
        texts_to_warm: list[str] = []
        if calls.phrases is not None:  # as a server with a warmed cache directory would
            texts_to_warm = _known_phrases(settings)
            await _warm(tts, fmt, texts_to_warm[:1], calls.phrases, settings)  # the opening
        async with loopback:
            phone.server_url = loopback.http_url
            async with anyio.create_task_group() as tg:

                async def warm_the_rest() -> None:
                    try:
                        if calls.phrases is not None:
                            report = await _warm(tts, fmt, texts_to_warm, calls.phrases, settings)
                            out(
                                f"phrase cache: {report.synthesised + report.already} of "
                                f"{len(texts_to_warm)} known phrases ready (scripts play with "
                                "no TTS round-trip)"
                            )
                    except Exception as exc:  # the call goes on; phrases are synthesised live
                        logger.warning("phrase cache: warming failed: %s", exc)
                        out(f"phrase cache: warming failed ({exc}); phrases are synthesised live")
                    finally:
                        warmed.set()

                tg.start_soon(warm_the_rest)

                async def watch() -> None:
                    while not transcript.ended.is_set():
                        for session in list(calls.active.values()):
                            transcript.poll(session)
                        await anyio.sleep(0.1)

                tg.start_soon(watch)
                async with phone.call(fmt=fmt) as call:
                    if record:
                        call.recording = result.recording = LineRecording(fmt)
                    agent_first = _agent_speaks_first(settings)
                    result.heard_at = await _speak_lines(call, utterances, agent_first, warmed)
                with anyio.move_on_after(15):
                    await transcript.ended.wait()
                tg.cancel_scope.cancel()
        if transcript.record is None:
            raise RuntimeError("the call did not end: no call record")
        result.record = transcript.record
        return result


def _known_phrases(settings: VoiceKitSettings) -> list[str]:
    """The texts a call can say that the phrase cache can hold; the opening first."""
    from voicekit.flows.phrases import call_phrases
    from voicekit.flows.runtime import flow_from_settings

    return call_phrases(settings, flow_from_settings(settings))


async def _warm(
    tts: TTS, fmt: AudioFormat, texts: list[str], cache: PhraseCache, settings: VoiceKitSettings
) -> WarmReport:
    """Synthesise those of ``texts`` not in ``cache`` yet, in the TTS format of a call on
    a ``fmt`` line."""
    from voicekit.phrases.warm import warm_phrases
    from voicekit.session.negotiate import choose_format

    return await warm_phrases(
        tts, choose_format(fmt, tts.output_formats), texts, cache, settings.turn
    )


def _agent_speaks_first(settings: VoiceKitSettings) -> bool:
    from voicekit.flows.runtime import flow_from_settings

    flow = flow_from_settings(settings)
    if flow is not None:
        return flow.first_speaker == "agent"
    return settings.agent.first_speaker == "agent" and bool(settings.agent.greeting)


def _caller_settings() -> VoiceKitSettings:
    from voicekit.config import load_settings

    # The caller says the same words the same way on every run: a result repeats.
    return load_settings(
        tts={"provider": CALLER_VOICE},
        providers={CALLER_VOICE: {"tts": {"variation": False}}},
    )


def record_json(record: CallRecord) -> dict[str, Any]:
    """The call record as JSON-ready data, each turn with its TTFA."""
    data = dataclasses.asdict(record)
    for turn, metrics in zip(data["turns"], record.turns, strict=True):
        turn["ttfa_ms"] = metrics.ttfa_ms
    return data
