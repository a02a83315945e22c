"""Parse ElevenLabs WebSocket messages (PROTOCOLS.md §1), accepting every documented
spelling: ``charDurationsMs``/``charsDurationsMs``, ``contextId``/``context_id``,
``isFinal``/``is_final``. Pure functions: no I/O, easy to test and to benchmark.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from voicekit.tts import Alignment

__all__ = ["AudioEvent", "ErrorEvent", "FinalEvent", "MalformedMessage", "parse_message"]


class MalformedMessage(ValueError):
    """The server sent something that is not a valid message; skip it."""


@dataclass(frozen=True, slots=True)
class AudioEvent:
    context_id: str | None
    audio: bytes
    alignment: Alignment | None


@dataclass(frozen=True, slots=True)
class FinalEvent:
    context_id: str | None


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    context_id: str | None
    message: str
    error: str | None


def _alignment(data: Any) -> Alignment | None:
    if not isinstance(data, dict):
        return None
    chars = data.get("chars")
    starts = data.get("charStartTimesMs")
    durations = data.get("charDurationsMs", data.get("charsDurationsMs"))
    if not (isinstance(chars, list) and isinstance(starts, list) and isinstance(durations, list)):
        return None
    if not len(chars) == len(starts) == len(durations):
        raise MalformedMessage("alignment arrays differ in length")
    try:
        return Alignment(
            tuple(str(c) for c in chars),
            tuple(int(s) for s in starts),
            tuple(int(d) for d in durations),
        )
    except (TypeError, ValueError) as exc:
        raise MalformedMessage(f"bad alignment values: {exc}") from None


def parse_message(raw: str | bytes) -> list[AudioEvent | FinalEvent | ErrorEvent]:
    """Events in one server message (an audio message can also be the final one)."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedMessage("not a JSON object")
    context_id = data.get("contextId", data.get("context_id"))
    if context_id is not None and not isinstance(context_id, str):
        raise MalformedMessage("context id is not a string")
    events: list[AudioEvent | FinalEvent | ErrorEvent] = []
    if isinstance(data.get("error"), str) or ("message" in data and "audio" not in data):
        events.append(
            ErrorEvent(
                context_id,
                str(data.get("message", data.get("error"))),
                data.get("error") if isinstance(data.get("error"), str) else None,
            )
        )
        return events
    audio = data.get("audio")
    if audio is not None:
        if not isinstance(audio, str):
            raise MalformedMessage("audio is not a base64 string")
        try:
            pcm = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedMessage(f"bad base64 audio: {exc}") from None
        alignment = _alignment(data.get("alignment")) or _alignment(data.get("normalizedAlignment"))
        if pcm:
            events.append(AudioEvent(context_id, pcm, alignment))
    if data.get("isFinal") is True or data.get("is_final") is True:
        events.append(FinalEvent(context_id))
    return events
