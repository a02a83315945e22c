"""Cost per 20 ms frame of the audio primitives on the telephony hot path.

Target (issue 2): each of μ-law encode, μ-law decode and 16 kHz → 8 kHz resampling costs
at most 20 µs per 20 ms frame. Prints the median of several timed repeats, and the
ratio of voicekit's encode/decode to CPython's audioop where audioop is available.

    python benchmarks/audio.py [--repeats 7] [--frames 20000]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np

from voicekit.audio import Resampler, alaw_encode, ulaw_decode, ulaw_encode

TARGET_US = 20.0


def per_frame_us(fn: Callable[[], object], frames: int, repeats: int) -> float:
    fn()  # warm up (builds the lazy tables)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(frames):
            fn()
        runs.append((time.perf_counter() - start) / frames * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--frames", type=int, default=20000)
    args = parser.parse_args()

    t = np.arange(320) / 16000
    pcm16k = (0.4 * 32767 * np.sin(2 * math.pi * 440 * t)).astype("<i2").tobytes()
    pcm8k = pcm16k[:320]  # 160 samples = 20 ms at 8 kHz
    mulaw = ulaw_encode(pcm8k)
    resampler = Resampler(16000, 8000)

    cases: list[tuple[str, Callable[[], object], Callable[[], object] | None]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:  # Python 3.13+ without audioop-lts
            audioop = None  # type: ignore[assignment]
    cases.append(
        (
            "mu-law encode (160 samples)",
            lambda: ulaw_encode(pcm8k),
            (lambda: audioop.lin2ulaw(pcm8k, 2)) if audioop else None,
        )
    )
    cases.append(
        (
            "mu-law decode (160 bytes)",
            lambda: ulaw_decode(mulaw),
            (lambda: audioop.ulaw2lin(mulaw, 2)) if audioop else None,
        )
    )
    cases.append(
        (
            "A-law encode (160 samples)",
            lambda: alaw_encode(pcm8k),
            (lambda: audioop.lin2alaw(pcm8k, 2)) if audioop else None,
        )
    )
    cases.append(("resample 16k->8k (320 samples)", lambda: resampler.process(pcm16k), None))

    print(f"per 20 ms frame, median of {args.repeats} runs x {args.frames} frames")
    print(f"{'operation':<32} {'voicekit us':>12} {'audioop us':>11} {'ratio':>6}  target")
    failed = False
    for name, ours, reference in cases:
        ours_us = per_frame_us(ours, args.frames, args.repeats)
        ref = per_frame_us(reference, args.frames, args.repeats) if reference else None
        ok = ours_us <= TARGET_US
        failed |= not ok
        ref_text = f"{ref:11.2f}" if ref is not None else f"{'-':>11}"
        ratio = f"{ours_us / ref:6.2f}" if ref else f"{'-':>6}"
        verdict = "ok" if ok else "OVER"
        print(f"{name:<32} {ours_us:12.2f} {ref_text} {ratio}  {verdict} (<= {TARGET_US:.0f})")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
