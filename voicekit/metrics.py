"""Per-turn latency timelines: recording the points and reporting them honestly.

Every point is taken on the same monotonic clock when the event actually happens (the
first frame *sent*, the first mark *reached*), never reconstructed afterwards; the caller's
speech end comes from the STT's audio position mapped back to when that audio arrived.
"""

from __future__ import annotations

import anyio

from voicekit.records import TIMELINE_FIELDS, TurnMetrics

__all__ = ["TIMELINE_FIELDS", "format_turn", "frame_sent", "stamp"]


def stamp(metrics: TurnMetrics, field: str, at: float | None = None) -> None:
    """Record timeline point ``field`` once (the first occurrence is the one that counts)."""
    if getattr(metrics, field) is None:
        setattr(metrics, field, anyio.current_time() if at is None else at)


def format_turn(call_id: str, turn: TurnMetrics) -> str:
    """One log line: TTFA, then each step relative to the caller's speech end."""
    origin = turn.user_speech_end or turn.stt_end_of_turn or turn.llm_request
    parts = [f"call={call_id}", f"turn={turn.turn_index}"]
    ttfa = turn.ttfa_ms
    parts.append(f"ttfa={ttfa:.0f}ms" if ttfa is not None else "ttfa=-")
    if origin is not None:
        for name in TIMELINE_FIELDS:
            value = getattr(turn, name)
            if value is not None and name != "user_speech_end":
                parts.append(f"{name}={(value - origin) * 1000:+.0f}")
    if turn.max_frame_late_ms >= 1:
        parts.append(f"frame_late_max={turn.max_frame_late_ms:.0f}ms")
    if turn.underruns:
        parts.append(f"underruns={turn.underruns}")
    if turn.speculation is not None:
        parts.append(f"speculation={turn.speculation}/{turn.speculations}")
    if turn.discarded_input_tokens or turn.discarded_output_tokens:
        parts.append(
            f"discarded_tokens={turn.discarded_input_tokens}/{turn.discarded_output_tokens}"
        )
    if turn.interrupted:
        parts.append("interrupted")
    if turn.error:
        parts.append(f"error={turn.error!r}")
    return " ".join(parts)


def frame_sent(metrics: TurnMetrics, late_s: float, lead_s: float, frames: int = 1) -> None:
    """Count ``frames`` frames of the turn's reply that went out in one message ``late_s``
    after they were due: later than the playout lead means the far end had run dry (an
    underrun the caller heard)."""
    metrics.frames_sent += frames
    if late_s * 1000 > metrics.max_frame_late_ms:
        metrics.max_frame_late_ms = late_s * 1000
    if late_s > lead_s:
        metrics.underruns += 1
