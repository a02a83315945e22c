"""Many concurrent calls against one voicekit server process (issue 5).

Three processes, all on loopback:
- the server: ``voicekit serve`` with Soniox, ElevenLabs, the fake LLM and Telnyx;
- the providers: the Soniox and ElevenLabs emulators;
- this one: the Telnyx REST emulator and the phone simulator placing N calls.

Each call: the caller says something, the agent answers, the caller listens, hangs up.
Reported per N: the p99 gap between consecutive 20 ms agent frames within a reply (as the
simulator receives them), caller-perceived TTFA (end of the caller's speech to the first
agent frame) median and p95, and the server's CPU and memory per call (from /proc).

Target: at N = 200, p99 frame gap <= 40 ms and TTFA p95 within 20 ms of a single call.

    python benchmarks/load.py [--calls 1,25,50,100,200] [--turns 2]
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

from voicekit.audio import ULAW_8K
from voicekit.testing import voice
from voicekit.testing.emulators import TelnyxEmulator
from voicekit.testing.phone import PhoneSimulator, SimulatedCall

PROVIDERS_SCRIPT = """
import anyio, json, sys
from voicekit.testing.emulators import ElevenLabsEmulator, SonioxEmulator
async def main():
    async with SonioxEmulator(utterances=["what time do you open"] * 100000,
                              endpoint_ms=500) as sx, \\
               ElevenLabsEmulator(first_audio_ms=100, ms_per_char=60) as el:
        print(json.dumps({"soniox": sx.url, "elevenlabs": el.url}), flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)
anyio.run(main)
"""


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


async def one_call(
    phone: PhoneSimulator, turns: int, gaps: list[float], ttfa: list[float], start_delay: float
) -> None:
    await anyio.sleep(start_delay)
    call: SimulatedCall
    async with phone.call() as call:
        await call.wait(0.5)
        for _ in range(turns):
            report = await call.say(voice(600, ULAW_8K))
            with anyio.move_on_after(10):
                while report.agent_started_at is None:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            await call.wait(3.5)  # the reply is ~2.5 s of audio
            if report.latency_ms is not None:
                ttfa.append(report.latency_ms)
    gaps.extend((b - a) * 1000 for a, b in itertools.pairwise(call.frame_times) if b - a < 0.5)


async def run_level(
    n: int, turns: int, phone: PhoneSimulator, server_pid: int, providers_pid: int
) -> dict[str, float]:
    gaps: list[float] = []
    ttfa: list[float] = []
    rss_before = proc_rss_mb(server_pid)
    pids = {"server": server_pid, "providers": providers_pid, "simulator": os.getpid()}
    cpu_start = {name: proc_cpu_s(pid) for name, pid in pids.items()}
    cpu_before, t0 = cpu_start["server"], time.perf_counter()
    peak_rss = rss_before

    async def sample() -> None:
        nonlocal peak_rss
        while True:
            peak_rss = max(peak_rss, proc_rss_mb(server_pid))
            await anyio.sleep(0.25)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sample)
        async with anyio.create_task_group() as calls:
            for i in range(n):
                calls.start_soon(one_call, phone, turns, gaps, ttfa, i * 0.01)
        tg.cancel_scope.cancel()
    elapsed = time.perf_counter() - t0
    cpu = proc_cpu_s(server_pid) - cpu_before
    busy = {name: 100 * (proc_cpu_s(pid) - cpu_start[name]) / elapsed for name, pid in pids.items()}
    return {
        **{f"cpu_{k}": v for k, v in busy.items()},
        "n": n,
        "gap_p99": pct(gaps, 0.99),
        "gap_max": max(gaps, default=float("nan")),
        "ttfa_median": statistics.median(ttfa) if ttfa else float("nan"),
        "ttfa_p95": pct(ttfa, 0.95),
        "answered": len(ttfa) / (n * turns),
        "cpu_pct_per_call": 100 * cpu / elapsed / n,
        "mb_per_call": max(0.0, peak_rss - rss_before) / n,
        "rss_mb": peak_rss,
    }


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
[providers.soniox]
url = "{soniox}"
api_key = "test-soniox-key"
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


def start_providers() -> tuple[subprocess.Popen[str], dict[str, str]]:
    providers = subprocess.Popen(
        [sys.executable, "-c", PROVIDERS_SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert providers.stdout is not None
    return providers, json.loads(providers.stdout.readline())


def start_server(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "voicekit", "serve", "--config", str(config)],
            stdout=out,
            stderr=out,
        )


async def main(levels: list[int], turns: int) -> None:
    providers, urls = await anyio.to_thread.run_sync(start_providers)
    port = free_port()
    workdir = Path(tempfile.mkdtemp())
    async with TelnyxEmulator() as telnyx:
        phone = PhoneSimulator(f"http://127.0.0.1:{port}", telnyx)
        config = workdir / "voicekit.toml"
        await anyio.Path(config).write_text(
            CONFIG.format(port=port, public_key=phone.public_key, telnyx=telnyx.url, **urls)
        )
        server = await anyio.to_thread.run_sync(start_server, config, workdir / "server.log")
        try:
            async with httpx.AsyncClient() as client:
                with anyio.fail_after(30):
                    while True:
                        try:
                            if (await client.get(f"http://127.0.0.1:{port}/healthz")).is_success:
                                break
                        except httpx.HTTPError:
                            await anyio.sleep(0.2)
            print(
                f"{'N':>5}{'gap p99':>9}{'gap max':>9}{'TTFA med':>10}{'TTFA p95':>10}"
                f"{'answered':>9}{'CPU%/call':>10}{'MB/call':>8}{'RSS MB':>7}"
                f"   CPU % of a core: server / providers / simulator"
            )
            for n in levels:
                r = await run_level(n, turns, phone, server.pid, providers.pid)
                print(
                    f"{n:>5}{r['gap_p99']:>9.1f}{r['gap_max']:>9.1f}{r['ttfa_median']:>10.0f}"
                    f"{r['ttfa_p95']:>10.0f}{r['answered']:>9.0%}{r['cpu_pct_per_call']:>10.2f}"
                    f"{r['mb_per_call']:>8.2f}{r['rss_mb']:>7.0f}   {r['cpu_server']:.0f} / "
                    f"{r['cpu_providers']:.0f} / {r['cpu_simulator']:.0f}",
                    flush=True,
                )
                await anyio.sleep(2)
        finally:
            server.terminate()
            providers.stdin.close()  # type: ignore[union-attr]
            await anyio.to_thread.run_sync(server.wait, 30)
            await anyio.to_thread.run_sync(providers.wait, 10)
            await phone.aclose()
            print(f"server log: {workdir / 'server.log'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="concurrent calls against one server")
    parser.add_argument("--calls", default="1,25,50,100,200")
    parser.add_argument("--turns", type=int, default=2)
    args = parser.parse_args()
    anyio.run(main, [int(n) for n in args.calls.split(",")], args.turns)
