"""What the LLM providers add to time-to-first-token and to each token (issue 13).

Each provider streams from its loopback emulator; so does a minimal client (httpx, split
the SSE lines, ``json.loads`` each event) reading the same emulator in the same run. The
emulator runs on its own event loop in another thread, so its work is not the client's;
the loopback socket is in both, so the difference is what the provider adds: the
official SDK, voicekit's request building and event conversion.

- TTFT: from ``stream()`` called to the first ``TextDelta``, minus the emulator's
  configured ``first_token_ms``; the provider's median minus the minimal client's median
  is its overhead (goal <= 2 ms).
- Per token: CPU time of the client's thread (``time.thread_time``) for a 376-token
  reply streamed with no pacing, less that of a 4-token one, per extra token: the
  provider's, and the minimal client's (goal: the provider adds <= 0.1 ms).
- Prewarm: the first turn's TTFT against an emulator that holds each new connection's
  first request for ``connect_delay_ms`` (as a TCP and TLS handshake to the real service
  costs), cold and after ``prewarm()``.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import httpx
from voicekit_anthropic import AnthropicLLM, AnthropicSettings
from voicekit_openai import OpenAILLM, OpenAISettings

from voicekit.llm import LLM, Message, TextDelta
from voicekit.testing.emulators import AnthropicEmulator, OpenAIEmulator
from voicekit.testing.emulators.llm_script import LLMScript

__all__ = ["LLMOverhead", "measure"]

MESSAGES = [Message("system", "You are brief."), Message("user", "When do you open?")]
FIRST_TOKEN_MS = 20.0
SHORT_REPLY = "We open at nine."
LONG_REPLY = "We open at nine and close at five on weekdays, later on Fridays. " * 25
CONNECT_DELAY_MS = 100.0


@dataclass
class LLMOverhead:
    provider: str
    ttft_added_ms: float  # provider: median TTFT minus first_token_ms
    baseline_ttft_added_ms: float  # the minimal client, same emulator
    per_token_ms: float
    baseline_per_token_ms: float
    cold_first_turn_ms: float
    prewarmed_first_turn_ms: float

    @property
    def ttft_overhead_ms(self) -> float:
        return self.ttft_added_ms - self.baseline_ttft_added_ms

    @property
    def per_token_overhead_ms(self) -> float:
        return self.per_token_ms - self.baseline_per_token_ms


@dataclass(frozen=True)
class Kind:
    name: str
    emulator: Callable[..., Any]
    provider: Callable[[Any], LLM]
    raw_request: Callable[[Any], tuple[str, dict[str, str], dict[str, Any]]]
    raw_text: Callable[[dict[str, Any]], str | None]


def _openai_raw(em: OpenAIEmulator) -> tuple[str, dict[str, str], dict[str, Any]]:
    body = {
        "model": "gpt-test",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": m.role, "content": m.content} for m in MESSAGES],
    }
    return f"{em.url}/chat/completions", {"authorization": f"Bearer {em.api_key}"}, body


def _openai_text(event: dict[str, Any]) -> str | None:
    choices = event.get("choices") or []
    return (choices[0].get("delta") or {}).get("content") if choices else None


def _anthropic_raw(em: AnthropicEmulator) -> tuple[str, dict[str, str], dict[str, Any]]:
    body = {
        "model": "claude-test",
        "stream": True,
        "max_tokens": 1024,
        "system": MESSAGES[0].content,
        "messages": [{"role": "user", "content": MESSAGES[1].content}],
    }
    headers = {"x-api-key": em.api_key, "anthropic-version": "2023-06-01"}
    return f"{em.server.http_url}/v1/messages", headers, body


def _anthropic_text(event: dict[str, Any]) -> str | None:
    if event.get("type") == "content_block_delta":
        return str(event["delta"].get("text") or "") or None
    return None


KINDS = [
    Kind(
        "openai",
        OpenAIEmulator,
        lambda em: OpenAILLM(OpenAISettings(api_key=em.api_key, base_url=em.url)),
        _openai_raw,
        _openai_text,
    ),
    Kind(
        "anthropic",
        AnthropicEmulator,
        lambda em: AnthropicLLM(AnthropicSettings(api_key=em.api_key, base_url=em.url)),
        _anthropic_raw,
        _anthropic_text,
    ),
]


@contextlib.contextmanager
def emulator_thread(kind: Kind, **options: Any) -> Iterator[Any]:
    """The emulator served on its own event loop in a daemon thread."""
    ready, stop = threading.Event(), threading.Event()
    box: list[Any] = []

    async def serve() -> None:
        async with kind.emulator(**options) as em:
            box.append(em)
            ready.set()
            await anyio.to_thread.run_sync(stop.wait)

    thread = threading.Thread(target=anyio.run, args=(serve,), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield box[0]
    finally:
        stop.set()
        thread.join(10)


@dataclass
class Run:
    ttft_ms: float
    deltas: int
    cpu_ms: float  # the client thread's CPU time for the whole request


async def _provider_run(llm: LLM) -> Run:
    start, cpu = time.perf_counter(), time.thread_time()
    first: float | None = None
    deltas = 0
    async for event in llm.stream(MESSAGES):
        if isinstance(event, TextDelta) and event.text:
            deltas += 1
            if first is None:
                first = time.perf_counter()
    assert first is not None
    return Run((first - start) * 1000, deltas, (time.thread_time() - cpu) * 1000)


async def _raw_run(client: httpx.AsyncClient, kind: Kind, em: Any) -> Run:
    url, headers, body = kind.raw_request(em)
    start, cpu = time.perf_counter(), time.thread_time()
    first: float | None = None
    deltas = 0
    async with client.stream("POST", url, headers=headers, json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            if kind.raw_text(json.loads(line[6:])):
                deltas += 1
                if first is None:
                    first = time.perf_counter()
    assert first is not None
    return Run((first - start) * 1000, deltas, (time.thread_time() - cpu) * 1000)


def _script(em: LLMScript, reply: str, first_token_ms: float, tokens_per_second: float) -> None:
    em.default_reply, em.replies, em._next = reply, [], 0
    em.first_token_ms, em.tokens_per_second = first_token_ms, tokens_per_second


async def _interleaved(
    kind: Kind, em: Any, llm: LLM, client: httpx.AsyncClient, n: int
) -> tuple[list[Run], list[Run]]:
    """``n`` runs of the provider and of the minimal client, alternating, so drift in the
    machine's speed hits both alike."""
    ours, raw = [], []
    for _ in range(n):
        ours.append(await _provider_run(llm))
        raw.append(await _raw_run(client, kind, em))
    return ours, raw


def _per_token(long: list[Run], short: list[Run]) -> float:
    extra_tokens = long[0].deltas - short[0].deltas
    cpu = statistics.median(r.cpu_ms for r in long) - statistics.median(r.cpu_ms for r in short)
    return cpu / extra_tokens


async def measure_one(kind: Kind, *, turns: int = 150, long_runs: int = 40) -> LLMOverhead:
    with emulator_thread(kind) as em:
        llm = kind.provider(em)
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                _script(em, SHORT_REPLY, FIRST_TOKEN_MS, 200.0)
                await _interleaved(kind, em, llm, client, 5)  # warm both connection pools
                ours, raw = await _interleaved(kind, em, llm, client, turns)
                ttft = statistics.median(r.ttft_ms for r in ours) - FIRST_TOKEN_MS
                raw_ttft = statistics.median(r.ttft_ms for r in raw) - FIRST_TOKEN_MS
                _script(em, SHORT_REPLY, 0.0, 1e9)  # no pacing: as fast as it goes
                short_ours, short_raw = await _interleaved(kind, em, llm, client, long_runs)
                _script(em, LONG_REPLY, 0.0, 1e9)
                long_ours, long_raw = await _interleaved(kind, em, llm, client, long_runs)
        finally:
            await llm.aclose()
    cold, warm = [], []
    for _ in range(5):  # a fresh emulator each time: every connection is new
        for prewarm, into in ((False, cold), (True, warm)):
            with emulator_thread(kind, connect_delay_ms=CONNECT_DELAY_MS) as em:
                _script(em, SHORT_REPLY, FIRST_TOKEN_MS, 200.0)
                llm = kind.provider(em)
                try:
                    if prewarm:
                        await llm.prewarm()  # at call start, while the caller speaks
                    into.append((await _provider_run(llm)).ttft_ms)
                finally:
                    await llm.aclose()
    return LLMOverhead(
        kind.name,
        ttft,
        raw_ttft,
        _per_token(long_ours, short_ours),
        _per_token(long_raw, short_raw),
        statistics.median(cold),
        statistics.median(warm),
    )


async def measure() -> list[LLMOverhead]:
    return [await measure_one(kind) for kind in KINDS]
