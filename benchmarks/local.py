"""The offline engines alone: piper's first audio and real-time factor, pocketsphinx's
cost per second of speech and its end-of-turn delay, on this machine.

First audio is measured on the first clause a reply would push (about 20 characters),
the real-time factor on whole sentences (synthesis time over audio length). Each figure
is the median of ``--runs`` repetitions, after one warm-up.

    python benchmarks/local.py [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import time

import anyio
from voicekit_local import LocalSTT, LocalTTS
from voicekit_local.speak import speak

from voicekit.audio import PCM_16K
from voicekit.stt import EndOfTurn

CLAUSE = "Thanks for calling, "
SENTENCES = [
    "We're open Monday to Friday from eight to six, and Saturday from nine to one. ",
    "I can book that for you. Which day would suit you? ",
    "We're at twelve Harbor View Road, next to the ferry terminal. ",
]
CALLER = "What are your opening hours on Saturday?"


async def first_audio_ms(tts: LocalTTS, text: str) -> tuple[float, float]:
    """(ms to the first chunk, seconds of audio) for ``text``."""
    async with tts.session(tts.output_formats[0]) as session:
        utterance = session.utterance()
        started = time.perf_counter()
        await utterance.push_text(text)
        await utterance.end()
        first = None
        audio = 0
        async for chunk in utterance:
            first = first or time.perf_counter()
            audio += len(chunk.data)
        assert first is not None
    return (first - started) * 1000, tts.output_formats[0].duration_ms(audio) / 1000


async def stt_cost(stt: LocalSTT, audio: bytes, speech_s: float) -> tuple[float, float]:
    """(CPU seconds per second of speech, ms from the speech's end to EndOfTurn)."""
    ended: float | None = None
    cpu = time.process_time()
    async with stt.stream(PCM_16K) as stream:
        frame = PCM_16K.bytes_for_ms(20)
        start = time.perf_counter()
        speech_end = start + 0.3 + speech_s  # 300 ms of silence come first

        async def send() -> None:
            for n, i in enumerate(range(0, len(audio), frame)):
                await stream.send_audio(audio[i : i + frame])
                await anyio.sleep(max(0.0, start + (n + 1) * 0.02 - time.perf_counter()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(send)
            async for event in stream:
                if isinstance(event, EndOfTurn):
                    ended = time.perf_counter()
                    tg.cancel_scope.cancel()
                    break
    assert ended is not None
    return (time.process_time() - cpu) / speech_s, (ended - speech_end) * 1000


async def main(runs: int) -> None:
    tts, stt = LocalTTS(), LocalSTT()
    await tts.prepare()
    await stt.prepare()
    await first_audio_ms(tts, CLAUSE)  # warm-up
    firsts = [(await first_audio_ms(tts, CLAUSE))[0] for _ in range(runs)]
    rtfs = []
    for _ in range(runs):
        for sentence in SENTENCES:
            ms, seconds = await first_audio_ms(tts, sentence)
            rtfs.append(ms / 1000 / seconds)
    speech = await speak(CALLER, PCM_16K)
    speech_s = PCM_16K.duration_ms(len(speech)) / 1000
    audio = PCM_16K.silence(300) + speech + PCM_16K.silence(1500)
    costs = [await stt_cost(stt, audio, speech_s) for _ in range(runs)]
    cpu = statistics.median(c for c, _ in costs)
    eot = statistics.median(e for _, e in costs)
    first, rtf = statistics.median(firsts), statistics.median(rtfs)
    print(f"piper first audio of a {len(CLAUSE)}-character clause: median {first:.0f} ms")
    print(f"piper real-time factor on whole sentences: median {rtf:.3f} (max {max(rtfs):.3f})")
    print(f"pocketsphinx: {cpu:.3f} CPU seconds per second of speech (all threads)")
    print(f"end of turn after the caller stopped (end_silence_ms 500): median {eot:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    anyio.run(main, parser.parse_args().runs)
