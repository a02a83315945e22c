"""Provider plugin overheads (issue 4).

1. ElevenLabs: from one audio message (100 ms of ulaw_8000 with alignment) to the
   AudioChunk the utterance yields. Measured twice: in process (parse, base64, alignment,
   routing, iterator; target median <= 0.5 ms), and over loopback from the emulator's
   send to the chunk yielded (adds WebSocket framing and the socket).
2. Soniox: cost of ``send_audio`` for one 20 ms mu-law frame on a live connection
   (replay buffer, framing, socket write; target <= 50 us).
3. The LLM providers (openai, which grok is; anthropic): what each adds to TTFT and per
   token over a minimal SSE client on the same emulator, and the first turn's TTFT cold
   and prewarmed (benchmarks/llm_overhead.py says how).

    python benchmarks/providers.py
"""

from __future__ import annotations

import json
import statistics
import time

import anyio
import anyio.lowlevel
from llm_overhead import measure as measure_llms
from voicekit_elevenlabs import ElevenLabsTTS
from voicekit_elevenlabs.session import ElevenLabsSession, _Context
from voicekit_elevenlabs.settings import ElevenLabsSettings
from voicekit_soniox import SonioxSTT
from voicekit_soniox.settings import SonioxSettings

from voicekit.audio import ULAW_8K
from voicekit.testing import silence
from voicekit.testing.emulators import ElevenLabsEmulator, SonioxEmulator
from voicekit.testing.emulators.elevenlabs_audio import audio_messages

EL_KEY, SX_KEY = "test-elevenlabs-key", "test-soniox-key"


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[round(0.95 * (len(ordered) - 1))]


async def elevenlabs_in_process(n: int) -> list[float]:
    settings = ElevenLabsSettings.model_validate({"api_key": EL_KEY})
    session = ElevenLabsSession(settings, ULAW_8K, "bench")
    utterance = session.utterance()
    utterance.log = "x" * 10**6
    session._contexts[utterance.context_id] = _Context(utterance)
    raw = json.dumps(
        audio_messages(
            "Hello there. " * 2,
            ULAW_8K,
            ms_per_char=100 / 26,
            chars_per_chunk=26,
            context_id=utterance.context_id,
        )[0]
    )
    chunks = aiter(utterance)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        session.on_message(raw)
        await anext(chunks)
        times.append((time.perf_counter() - start) * 1000)
    return times


async def elevenlabs_loopback(n: int) -> list[float]:
    async with ElevenLabsEmulator(first_audio_ms=0, ms_per_char=1, chars_per_chunk=100) as el:
        sent_at: list[float] = []
        original = el._send

        async def stamped(conn: object, message: dict) -> None:  # type: ignore[type-arg]
            if "audio" in message:
                sent_at.append(time.perf_counter())
            await original(conn, message)  # type: ignore[arg-type]

        el._send = stamped  # type: ignore[method-assign]
        tts = ElevenLabsTTS(ElevenLabsSettings.model_validate({"api_key": EL_KEY, "url": el.url}))
        times: list[float] = []
        async with tts.session(ULAW_8K) as session:
            for _ in range(n // 20):
                utterance = session.utterance()
                await utterance.push_text(
                    "This is one hundred characters of text to speak, "
                    "padded out so that chunks are about that size. " * 20
                )
                await utterance.end()
                async for _chunk in utterance:
                    times.append((time.perf_counter() - sent_at[len(times)]) * 1000)
        return times


async def soniox_send(n: int) -> list[float]:
    async with SonioxEmulator() as sx:
        stt = SonioxSTT(SonioxSettings.model_validate({"api_key": SX_KEY, "url": sx.url}))
        frame = silence(20, ULAW_8K)
        times = []
        async with stt.stream(ULAW_8K, call_id="bench") as stream:
            for i in range(n):
                start = time.perf_counter()
                await stream.send_audio(frame)
                times.append((time.perf_counter() - start) * 1e6)
                if i % 50 == 0:
                    await anyio.lowlevel.checkpoint()  # let the emulator drain the socket
        return times


async def main() -> None:
    inproc = await elevenlabs_in_process(5000)
    loop = await elevenlabs_loopback(400)
    sends = await soniox_send(5000)
    print(f"{'measure':<52}{'median':>9}{'p95':>9}  target")
    print(
        f"{'ElevenLabs message -> AudioChunk, in process (ms)':<52}"
        f"{statistics.median(inproc):9.3f}{p95(inproc):9.3f}  <= 0.5"
    )
    print(
        f"{'ElevenLabs emulator send -> AudioChunk, loopback (ms)':<52}"
        f"{statistics.median(loop):9.3f}{p95(loop):9.3f}"
    )
    print(
        f"{'Soniox send_audio, one 20 ms frame (us)':<52}"
        f"{statistics.median(sends):9.1f}{p95(sends):9.1f}  <= 50"
    )
    ok = statistics.median(inproc) <= 0.5 and statistics.median(sends) <= 50
    for r in await measure_llms():
        print(
            f"{r.provider + ' TTFT added over a minimal client (ms)':<52}"
            f"{r.ttft_overhead_ms:9.2f}{'':>9}  <= 2"
            f"   (provider {r.ttft_added_ms:.2f}, minimal {r.baseline_ttft_added_ms:.2f})"
        )
        print(
            f"{r.provider + ' per token over a minimal client (ms)':<52}"
            f"{r.per_token_overhead_ms:9.3f}{'':>9}  <= 0.1"
            f"   (provider {r.per_token_ms:.3f}, minimal {r.baseline_per_token_ms:.3f})"
        )
        print(
            f"{r.provider + ' first-turn TTFT, +100 ms connect: cold/prewarmed':<52}"
            f"{r.cold_first_turn_ms:9.1f}{r.prewarmed_first_turn_ms:9.1f}"
            f"   saved {r.cold_first_turn_ms - r.prewarmed_first_turn_ms:.1f} ms"
        )
        ok = ok and r.ttft_overhead_ms <= 2 and r.per_token_overhead_ms <= 0.1
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    anyio.run(main)
