"""A turn's latency as a waterfall drawn in the terminal: each step of the timeline as
milliseconds after the caller stopped speaking, with a bar to scale, in time order (a
speculative reply's steps come before the STT's end of turn)."""

from __future__ import annotations

from voicekit.records import TurnMetrics

__all__ = ["waterfall"]

WIDTH = 40  # characters of the longest bar


def _steps(turn: TurnMetrics, heard_at: float | None) -> list[tuple[str, float]]:
    steps: list[tuple[str, float | None]] = [
        ("turn likely over (speculation)", turn.turn_likely_over),
        ("end of turn (STT)", turn.stt_end_of_turn),
        ("LLM request", turn.llm_request),
        ("LLM first token", turn.llm_first_token),
        ("first words to TTS (decision made)", turn.first_segment),
        ("TTS first audio", turn.tts_first_audio),
        ("first frame sent (TTFA)", turn.first_frame_sent),
        ("first audio heard by the caller", heard_at),
    ]
    return sorted(((label, at) for label, at in steps if at is not None), key=lambda s: s[1])


def waterfall(turn: TurnMetrics, heard_at: float | None = None) -> list[str]:
    """Lines drawing ``turn``'s timeline; ``heard_at`` is when the caller's phone began
    playing the reply (same clock as the turn's timestamps)."""
    origin = turn.user_speech_end if turn.user_speech_end is not None else turn.stt_end_of_turn
    if origin is None:
        return []
    steps = [(label, (at - origin) * 1000) for label, at in _steps(turn, heard_at)]
    longest = max((ms for _, ms in steps), default=0.0)
    scale = WIDTH / longest if longest > 0 else 0.0
    lines = [f"  {'caller stopped speaking':36} {0:>7.0f} ms |"]
    for label, ms in steps:
        bar = "#" * max(1, round(ms * scale)) if ms > 0 else ""
        lines.append(f"  {label:36} {ms:>7.0f} ms |{bar}")
    if turn.speculations:
        cost = turn.discarded_input_tokens + turn.discarded_output_tokens
        lines.append(
            f"  speculation: {turn.speculation} ({turn.speculations} started; "
            f"{cost} LLM tokens on dropped ones)"
        )
    return lines
