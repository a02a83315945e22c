"""Many concurrent calls against one voicekit server process (issue 5).

Three processes, all on loopback:
- the server: ``voicekit serve`` with Soniox, ElevenLabs, the fake LLM and Telnyx;
- the providers: the Soniox and ElevenLabs emulators;
- this one: the Telnyx REST emulator and the phone simulator placing N calls.

With two or more CPUs the server gets one CPU to itself and the load generator (the
other two processes) the rest (``--no-pin`` to let the kernel schedule freely): the
numbers then describe the server, not a server fighting its own load generator.

Each call: the caller says something, the agent answers, the caller listens; ``--turns``
times, then it hangs up. Calls arrive spread evenly over ``--ramp`` seconds (real calls
arrive at random; starting them all together would also synchronise every turn).

Reported per N: the p99 and the largest gap between consecutive 20 ms agent frames within
a reply, as the simulator receives them (a message may carry several frames: the gap is
the time between messages less the extra audio the earlier one carried, about 20 ms when
on time; see ``frame_gaps_ms``); caller-perceived TTFA (end of the caller's speech to the
first agent frame) median and p95; the share of turns answered; the server's CPU and
memory per call (from /proc) and its CPU microseconds per second of call; the CPU of each
process; and the event-loop lag p99 (how late a 10 ms sleep wakes) of the emulators'
process and of the phone simulator, so the load generator's own lateness can be told
from the server's. Then, from the server's call records, the p95 of each step of the
turn, so a slow TTFA can be traced to the emulated providers or to the server.

Target at each N: p99 frame gap <= 40 ms, TTFA p95 within 20 ms of a single call, no
underrun, and every turn answered. The run ends with the **capacity**: the largest N
tested such that it and every lower level meet the target (the first level is the
single-call reference), and the server's CPU microseconds per second of call, so
progress is one number. When the first level that missed had a load generator whose own
event loops lagged more than 10 ms (p99), a note says the capacity is a lower bound.

    python benchmarks/load.py [--calls 1,50,100,...,350] [--turns 2] [--ramp 5] [--no-pin]
                              [--stt-send-ms 20]

``--stt-send-ms 60``: the server sends the caller's audio to Soniox three frames a message
(``[providers.soniox] send_ms``) instead of one, to measure what that saves.

``--local``: the offline providers instead (piper TTS and pocketsphinx STT in the
server process, no phrase cache, so every reply is synthesised), the caller speaking a
real sentence (piper) on an L16 16 kHz line. It reports how many concurrent local calls
one process sustains: the capacity line's criteria, where an underrun is a reply the
server could not keep ahead of playback.

    python benchmarks/load.py --local [--calls 1,2,3,4,6,8]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx

from voicekit.audio import PCM_16K, ULAW_8K, AudioFormat
from voicekit.server.runtime import freeze_startup_heap
from voicekit.testing import voice
from voicekit.testing.emulators import TelnyxEmulator
from voicekit.testing.phone import PhoneSimulator, SimulatedCall

PROVIDERS_SCRIPT = """
import anyio, json, sys, time
from voicekit.server.runtime import freeze_startup_heap
from voicekit.testing.emulators import ElevenLabsEmulator, SonioxEmulator
lag = []
async def probe():
    while True:
        start = time.perf_counter()
        await anyio.sleep(0.01)
        lag.append((time.perf_counter() - start - 0.01) * 1000)
async def main():
    async with SonioxEmulator(utterances=["what time do you open"] * 100000,
                              endpoint_ms=500) as sx, \\
               ElevenLabsEmulator(first_audio_ms=100, ms_per_char=60) as el, \\
               anyio.create_task_group() as tg:
        freeze_startup_heap()
        tg.start_soon(probe)
        print(json.dumps({"soniox": sx.url, "elevenlabs": el.url}), flush=True)
        while await anyio.to_thread.run_sync(sys.stdin.readline):  # "lag": report, reset
            ordered = sorted(lag) or [0.0]
            print(ordered[int(0.99 * (len(ordered) - 1))], flush=True)
            lag.clear()
        tg.cancel_scope.cancel()
anyio.run(main, backend_options={"use_uvloop": True})
"""

CONFIG = """
[agent]
first_speaker = "caller"
[stt]
provider = "soniox"
[llm]
provider = "fake"
[tts]
provider = "elevenlabs"
[telephony]
provider = "telnyx"
[server]
host = "127.0.0.1"
port = {port}
public_url = "http://127.0.0.1:{port}"
max_calls = 1000
shutdown_grace_s = 1
records_dir = "{records}"
[providers.soniox]
url = "{soniox}"
api_key = "test-soniox-key"
send_ms = {stt_send_ms}
[providers.elevenlabs]
url = "{elevenlabs}"
api_key = "test-elevenlabs-key"
[providers.telnyx]
api_key = "test-telnyx-key"
public_key = "{public_key}"
base_url = "{telnyx}"
[providers.fake]
default_reply = "We open at nine in the morning, and close at five."
first_token_ms = 250
tokens_per_second = 40
"""

CONFIG_LOCAL = """
[agent]
first_speaker = "caller"
instructions = "You are a load test."
[stt]
provider = "local"
[llm]
provider = "fake"
[tts]
provider = "local"
[telephony]
provider = "telnyx"
[server]
host = "127.0.0.1"
port = {port}
public_url = "http://127.0.0.1:{port}"
max_calls = 1000
shutdown_grace_s = 1
records_dir = "{records}"
phrase_cache_mb = 0
[providers.telnyx]
api_key = "test-telnyx-key"
public_key = "{public_key}"
base_url = "{telnyx}"
codec = "L16"
[providers.fake]
default_reply = "We open at nine in the morning, and close at five."
first_token_ms = 250
tokens_per_second = 40
"""
CALLER_LINE = "What time do you open tomorrow?"
FRAME_S = 0.02
LOCAL_TTFA_SLACK_MS = 500  # a local call may answer this much later under load

# Where each turn's time went, from the server's own records: the emulated providers'
# steps (endpoint: the STT's end-of-turn; tts: the first audio) and the fake LLM's first
# token run on fixed delays, so any growth there is lateness; to_llm, piece and to_line
# are the server's own work.
STEPS = {
    "endpoint": ("user_speech_end", "stt_end_of_turn"),
    "to_llm": ("stt_end_of_turn", "llm_request"),
    "llm": ("llm_request", "llm_first_token"),
    "piece": ("llm_first_token", "first_segment"),
    "tts": ("first_segment", "tts_first_audio"),
    "to_line": ("tts_first_audio", "first_frame_sent"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")
    )


def cpu_split(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """CPUs for the server and for the load generator (None: no pinning)."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])


def turn_steps(records: Path, seen: set[Path]) -> dict[str, list[float]]:
    """Step durations (ms) of every turn in call records not read before, and pacing:
    how late the server sent each turn's frames at worst, and its underruns."""
    steps: dict[str, list[float]] = {name: [] for name in [*STEPS, "frame_late", "underruns"]}
    for path in sorted(records.glob("*.json")):
        if path in seen:
            continue
        seen.add(path)
        for turn in json.loads(path.read_text())["turns"]:
            for name, (a, b) in STEPS.items():
                if turn.get(a) is not None and turn.get(b) is not None:
                    steps[name].append((turn[b] - turn[a]) * 1000)
            steps["frame_late"].append(turn["max_frame_late_ms"])
            steps["underruns"].append(turn["underruns"])
    return steps


async def one_call(
    phone: PhoneSimulator,
    turns: int,
    gaps: list[float],
    ttfa: list[float],
    start_delay: float,
    durations: list[float],
    speech: tuple[AudioFormat, bytes],
) -> None:
    await anyio.sleep(start_delay)
    call: SimulatedCall
    started = time.perf_counter()
    fmt, audio = speech
    async with phone.call(fmt=fmt) as call:
        await call.wait(0.5)
        for _ in range(turns):
            report = await call.say(audio)
            with anyio.move_on_after(10):
                while report.agent_started_at is None:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            await call.wait(3.5)  # the reply is ~2.5 s of audio
            if report.latency_ms is not None:
                ttfa.append(report.latency_ms)
    durations.append(time.perf_counter() - started)
    gaps.extend(frame_gaps_ms(call.agent_messages))


def frame_gaps_ms(messages: list[tuple[float, float]]) -> list[float]:
    """The gap between consecutive 20 ms agent frames within a reply, as the far end
    receives them. A message may carry several frames (``[turn] playout_message_ms``): the
    wait for the next message beyond the audio the earlier one carried, plus one frame,
    which for one-frame messages is exactly the time between them. Pauses of 500 ms or
    more are between replies."""
    return [
        (b - a - (seconds - FRAME_S)) * 1000
        for (a, seconds), (b, _) in itertools.pairwise(messages)
        if b - a < 0.5
    ]


async def run_level(
    n: int,
    turns: int,
    ramp_s: float,
    phone: PhoneSimulator,
    server_pid: int,
    providers_pid: int | None,
    speech: tuple[AudioFormat, bytes],
) -> dict[str, float]:
    gaps: list[float] = []
    ttfa: list[float] = []
    durations: list[float] = []
    rss_before = proc_rss_mb(server_pid)
    pids = {"server": server_pid, "simulator": os.getpid()}
    if providers_pid is not None:
        pids["providers"] = providers_pid
    cpu_start = {name: proc_cpu_s(pid) for name, pid in pids.items()}
    t0 = time.perf_counter()
    peak_rss = rss_before

    async def sample() -> None:
        nonlocal peak_rss
        while True:
            peak_rss = max(peak_rss, proc_rss_mb(server_pid))
            await anyio.sleep(0.25)

    lag: list[float] = []

    async def probe_lag() -> None:
        """How late this process's own loop wakes from a 10 ms sleep: the phone simulator
        timestamps the caller's speech and the agent's audio here, so its lag is part of
        every TTFA measured, not the server's."""
        while True:
            start = time.perf_counter()
            await anyio.sleep(0.01)
            lag.append((time.perf_counter() - start - 0.01) * 1000)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sample)
        tg.start_soon(probe_lag)
        async with anyio.create_task_group() as calls:
            for i in range(n):
                calls.start_soon(
                    one_call, phone, turns, gaps, ttfa, i * ramp_s / n, durations, speech
                )
        tg.cancel_scope.cancel()
    elapsed = time.perf_counter() - t0
    used = {name: proc_cpu_s(pid) - cpu_start[name] for name, pid in pids.items()}
    busy = {name: 100 * cpu / elapsed for name, cpu in used.items()}
    return {
        "us_per_call_s": 1e6 * used["server"] / max(sum(durations), 1e-9),
        **{f"cpu_{k}": v for k, v in busy.items()},
        "n": n,
        "gap_p99": pct(gaps, 0.99),
        "gap_max": max(gaps, default=float("nan")),
        "ttfa_median": statistics.median(ttfa) if ttfa else float("nan"),
        "ttfa_p95": pct(ttfa, 0.95),
        "answered": len(ttfa) / (n * turns),
        "cpu_pct_per_call": busy["server"] / n,
        "mb_per_call": max(0.0, peak_rss - rss_before) / n,
        "rss_mb": peak_rss,
        "sim_lag_p99": pct(lag, 0.99),
    }


def providers_lag_ms(providers: subprocess.Popen[str]) -> float:
    """The emulators' event-loop lag p99 since the last ask (they time the emulated STT
    endpoint and TTS first audio, so their lag shows in those steps, not the server's)."""
    assert providers.stdin is not None and providers.stdout is not None
    providers.stdin.write("lag\n")
    providers.stdin.flush()
    return float(providers.stdout.readline())


def start_providers(cpus: set[int] | None) -> tuple[subprocess.Popen[str], dict[str, str]]:
    providers = subprocess.Popen(
        [sys.executable, "-c", PROVIDERS_SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    if cpus is not None:
        os.sched_setaffinity(providers.pid, cpus)
    assert providers.stdout is not None
    return providers, json.loads(providers.stdout.readline())


def start_server(config: Path, log: Path, cpus: set[int] | None) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "voicekit", "serve", "--config", str(config)],
            stdout=out,
            stderr=out,
        )
    if cpus is not None:
        os.sched_setaffinity(server.pid, cpus)
    return server


def capacity_line(
    levels: list[int],
    results: dict[int, dict[str, float]],
    steps_by_n: dict[int, dict[str, list[float]]],
    local: bool = False,
) -> str:
    """The largest N meeting the target, with the first level as the TTFA reference.

    Local speech engines share the CPU, so their TTFA grows with load by design: for
    them the target is audio without gaps (no underrun, gap p99 <= 40 ms) and an answer
    at most half a second later than a lone call's."""
    reference = results[levels[0]]["ttfa_p95"]
    met = [
        n
        for n in levels[1:]
        if results[n]["gap_p99"] <= 40
        and results[n]["ttfa_p95"] <= reference + (LOCAL_TTFA_SLACK_MS if local else 20)
        and sum(steps_by_n[n]["underruns"]) == 0
        and results[n]["answered"] >= 1.0
    ]
    # Capacity is the largest N below which every level met the target.
    capacity = 0
    for n in levels[1:]:
        if n not in met:
            break
        capacity = n
    loaded = [results[n]["us_per_call_s"] for n in levels[1:]]
    per_call = statistics.median(loaded) if loaded else results[levels[0]]["us_per_call_s"]
    if local:
        growth = results[capacity]["ttfa_p95"] - reference if capacity else 0.0
        return (
            f"\nlocal capacity: {capacity} concurrent calls with no underrun, gap p99 <= 40 ms "
            f"and TTFA p95 within {LOCAL_TTFA_SLACK_MS} ms of one call's ({growth:+.0f} ms); "
            "server CPU "
            f"{per_call:.0f} us per call-second"
        )
    return (
        f"\ncapacity: {capacity} calls (gap p99 <= 40 ms, TTFA p95 <= {reference:.0f} + 20 ms, "
        f"no underrun); server CPU {per_call:.0f} us per call-second (median over N > 1)"
        + generator_caveat(levels, results, capacity)
    )


GENERATOR_LAG_MS = 10.0  # half the TTFA allowance: past this the clients' lateness counts


def generator_caveat(levels: list[int], results: dict[int, dict[str, float]], capacity: int) -> str:
    """A warning when the first level that missed had a late load generator: the phone
    simulator timestamps the caller's speech and the agent's frames, and the emulators
    time the STT endpoint and the TTS, so their own event-loop lag is part of that
    level's gaps and TTFA, and the server may carry more than the capacity says."""
    missed = [n for n in levels[1:] if n > capacity]
    if not missed:
        return ""
    n = missed[0]
    lag = max(results[n]["sim_lag_p99"], results[n].get("providers_lag_p99", 0.0))
    if not lag > GENERATOR_LAG_MS:
        return ""
    return (
        f"\nnote: at {n} calls the load generator's own event loops lagged {lag:.0f} ms (p99):"
        " part of that level's gaps and TTFA is the generator's, so the capacity is a lower"
        " bound on what the server carries (on a machine with more cores, the generator gets"
        " every core but the server's)"
    )


async def wait_healthy(port: int) -> None:
    async with httpx.AsyncClient() as client:
        with anyio.fail_after(30):
            while True:
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).is_success:
                        return
                except httpx.HTTPError:
                    pass
                await anyio.sleep(0.2)


async def caller_speech(local: bool) -> tuple[AudioFormat, bytes]:
    if not local:
        return ULAW_8K, voice(600, ULAW_8K)
    from voicekit_local.speak import speak

    return PCM_16K, await speak(CALLER_LINE, PCM_16K)


async def main(
    levels: list[int], turns: int, ramp_s: float, pin: bool, local: bool, stt_send_ms: int
) -> None:
    server_cpus, load_cpus = cpu_split(pin)
    if load_cpus is not None:
        os.sched_setaffinity(0, load_cpus)
    print(f"CPUs: server {server_cpus or 'any'}, load generator {load_cpus or 'any'}")
    if not local:
        print(f"caller audio to Soniox in pieces of {stt_send_ms} ms ([providers.soniox] send_ms)")
    speech = await caller_speech(local)
    providers: subprocess.Popen[str] | None = None
    urls: dict[str, str] = {}
    if not local:
        providers, urls = await anyio.to_thread.run_sync(start_providers, load_cpus)
    port = free_port()
    workdir = Path(tempfile.mkdtemp())
    records = workdir / "records"
    async with (
        TelnyxEmulator() as telnyx,
        PhoneSimulator(f"http://127.0.0.1:{port}", telnyx) as phone,
    ):
        config = workdir / "voicekit.toml"
        await anyio.Path(config).write_text(
            (CONFIG_LOCAL if local else CONFIG).format(
                port=port,
                public_key=phone.public_key,
                telnyx=telnyx.url,
                records=records,
                stt_send_ms=stt_send_ms,
                **urls,
            )
        )
        server = await anyio.to_thread.run_sync(
            start_server, config, workdir / "server.log", server_cpus
        )
        freeze_startup_heap()
        steps_by_n: dict[int, dict[str, list[float]]] = {}
        seen: set[Path] = set()
        try:
            await wait_healthy(port)
            print(
                f"{'N':>5}{'gap p99':>9}{'gap max':>9}{'TTFA med':>10}{'TTFA p95':>10}"
                f"{'answered':>9}{'CPU%/call':>10}{'us/call-s':>10}{'MB/call':>8}{'RSS MB':>7}"
                f"   CPU % of a core: server / providers / simulator;"
                f" loop lag p99 ms: providers / simulator"
            )
            results: dict[int, dict[str, float]] = {}
            for n in levels:
                if providers is not None:
                    await anyio.to_thread.run_sync(providers_lag_ms, providers)  # reset
                r = await run_level(
                    n,
                    turns,
                    ramp_s,
                    phone,
                    server.pid,
                    providers.pid if providers else None,
                    speech,
                )
                if providers is not None:
                    r["providers_lag_p99"] = await anyio.to_thread.run_sync(
                        providers_lag_ms, providers
                    )
                results[n] = r
                print(
                    f"{n:>5}{r['gap_p99']:>9.1f}{r['gap_max']:>9.1f}{r['ttfa_median']:>10.0f}"
                    f"{r['ttfa_p95']:>10.0f}{r['answered']:>9.0%}{r['cpu_pct_per_call']:>10.2f}"
                    f"{r['us_per_call_s']:>10.0f}"
                    f"{r['mb_per_call']:>8.2f}{r['rss_mb']:>7.0f}   {r['cpu_server']:.0f} / "
                    f"{r.get('cpu_providers', 0):.0f} / {r['cpu_simulator']:.0f}; "
                    f"{r.get('providers_lag_p99', float('nan')):.0f} / {r['sim_lag_p99']:.0f}",
                    flush=True,
                )
                await anyio.sleep(2)  # the last records are written as the calls end
                steps_by_n[n] = turn_steps(records, seen)
            print(
                "\nfrom the server's records: each turn step, median / p95 ms; the latest frame"
                " of a turn (ms behind schedule), median / p99; underruns (frames later than"
                " the 120 ms lead: an audible gap the server caused), total"
            )
            print(
                f"{'N':>5}"
                + "".join(f"{name:>14}" for name in [*STEPS, "frame_late"])
                + "  underruns"
            )
            for n, steps in steps_by_n.items():
                cells = [
                    f"{statistics.median(v):>6.0f} /{pct(v, 0.95):>5.0f}" if v else f"{'-':>14}"
                    for name, v in steps.items()
                    if name in STEPS
                ]
                late = steps["frame_late"]
                cells.append(
                    f"{statistics.median(late):>6.0f} /{pct(late, 0.99):>5.0f}" if late else "-"
                )
                print(f"{n:>5}" + "".join(cells) + f"{sum(steps['underruns']):>11.0f}")
            print(capacity_line(levels, results, steps_by_n, local))
        finally:
            server.terminate()
            await anyio.to_thread.run_sync(server.wait, 30)
            if providers is not None:
                providers.stdin.close()  # type: ignore[union-attr]
                await anyio.to_thread.run_sync(providers.wait, 10)
            print(f"server log: {workdir / 'server.log'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="concurrent calls against one server")
    parser.add_argument(
        "--calls", default=None, help="levels (default 1,50,...,350; local 1,2,...)"
    )
    parser.add_argument("--local", action="store_true", help="the offline providers")
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds over which calls arrive")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin CPUs")
    parser.add_argument(
        "--stt-send-ms",
        type=int,
        default=20,
        help="[providers.soniox] send_ms: caller audio to the STT in pieces of this many ms",
    )
    args = parser.parse_args()
    levels = args.calls or ("1,2,3,4,6,8" if args.local else "1,50,100,150,200,250,300,350")
    anyio.run(
        main,
        [int(n) for n in levels.split(",")],
        args.turns,
        args.ramp,
        args.pin,
        args.local,
        args.stt_send_ms,
        backend_options={"use_uvloop": True},
    )
