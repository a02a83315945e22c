"""Turn Soniox responses into voicekit STT events (PROTOCOLS.md §2). Pure, no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from voicekit.errors import ProviderError
from voicekit.provider_errors import status_error
from voicekit.stt import EndOfTurn, SpeechStarted, STTEvent, Transcript, TurnLikelyOver

__all__ = ["MalformedResponse", "TokenState", "soniox_error"]

PROVIDER = "soniox"


class MalformedResponse(ValueError):
    """Not a valid Soniox response; skip it."""


def soniox_error(code: Any, message: str) -> ProviderError:
    """An ``error_code`` response (an HTTP-like status, as an int or a string) through the
    core's one mapping; Soniox's "Cannot continue request" (an early termination, sent
    as 503) is an outage like any 5xx."""
    try:
        status: int | None = int(code)
    except (TypeError, ValueError):
        status = 503 if "Cannot continue request" in message else None
    return status_error(
        status, f"Soniox error {code}", provider=PROVIDER, key_env="SONIOX_API_KEY", detail=message
    )


@dataclass
class TokenState:
    """Everything needed to turn responses into events across one call's connections.

    ``offset_ms`` is added to token times: after a reconnect the new stream's clock starts
    at zero, but its first audio is the replayed audio from ``offset_ms`` on.

    The turn is likely over (``TurnLikelyOver``) when a response shows every word of the
    turn final (no non-final tokens) and the audio processed since the last final word
    is at least ``likely_over_ms`` of silence; sent once per last final word.
    """

    likely_over_ms: float | None = 100.0

    offset_ms: float = 0.0
    in_speech: bool = False
    partial: str = ""
    last_final_end: float | None = None
    final_ms: float = 0.0  # audio position covered by final results
    fin: bool = False
    finished: bool = False
    turn_words: list[str] = field(default_factory=list)  # final text since the last <end>
    likely_over_sent: float | None = None  # the last final word's end it was sent for
    pending: list[STTEvent] = field(default_factory=list)

    def feed(self, raw: str | bytes) -> list[STTEvent]:
        """Events from one response. Raises ProviderError for an ``error_code`` response."""
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedResponse(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise MalformedResponse("not a JSON object")
        if "error_code" in data:
            raise soniox_error(data["error_code"], str(data.get("error_message", "")))
        tokens = data.get("tokens", [])
        if not isinstance(tokens, list) or not all(isinstance(t, dict) for t in tokens):
            raise MalformedResponse("tokens is not a list of objects")
        for token in tokens:
            if not isinstance(token.get("text", ""), str):
                raise MalformedResponse("a token's text is not a string")
            confidence = token.get("confidence")
            if confidence is not None and (
                isinstance(confidence, bool) or not isinstance(confidence, int | float)
            ):
                raise MalformedResponse("a token's confidence is not a number")
        events: list[STTEvent] = []
        finals = [t for t in tokens if t.get("is_final") and t.get("text")]
        words = [t for t in finals if t["text"] not in ("<end>", "<fin>")]
        partials = [t for t in tokens if not t.get("is_final") and t.get("text")]
        if (words or partials) and not self.in_speech:
            self.in_speech = True
            first = (words or partials)[0]
            events.append(SpeechStarted(self._time(first.get("start_ms"))))
        if words:
            confidences = [float(t["confidence"]) for t in words if t.get("confidence") is not None]
            self.last_final_end = self._time(words[-1].get("end_ms"))
            final = "".join(str(t["text"]) for t in words).strip()
            events.append(
                Transcript(
                    final,
                    is_final=True,
                    start_ms=self._time(words[0].get("start_ms")),
                    end_ms=self.last_final_end,
                    confidence=min(confidences) if confidences else None,
                )
            )
            self.partial = ""
            self.turn_words.append(final)
        partial = "".join(str(t["text"]) for t in partials).strip()
        if not partial and self.partial and not words:
            # Non-final tokens are re-sent in every response: none now, and none made
            # final, means Soniox took the pending words back.
            self.partial = ""
            events.append(Transcript("", is_final=False))
        elif partial and partial != self.partial:
            self.partial = partial
            events.append(
                Transcript(
                    partial,
                    is_final=False,
                    start_ms=self._time(partials[0].get("start_ms")),
                    end_ms=self._time(partials[-1].get("end_ms")),
                )
            )
        if isinstance(data.get("final_audio_proc_ms"), int | float):
            self.final_ms = max(self.final_ms, self.offset_ms + float(data["final_audio_proc_ms"]))
        markers = {t["text"] for t in finals} & {"<end>", "<fin>"}
        if not partials and not markers and self._quiet_since_final(data):
            self.likely_over_sent = self.last_final_end
            events.append(TurnLikelyOver(" ".join(self.turn_words), self.last_final_end))
        if "<end>" in markers:
            events.append(EndOfTurn(self.last_final_end))
            self.in_speech = False
            self.partial = ""
            self.turn_words.clear()
        if "<fin>" in markers:
            self.fin = True
        if data.get("finished") is True:
            self.finished = True
        return events

    def _quiet_since_final(self, data: dict[str, Any]) -> bool:
        """Whether the turn's words are all final and followed by enough processed audio
        with no new word (not yet signalled for this last word)."""
        total = data.get("total_audio_proc_ms")
        if (
            self.likely_over_ms is None
            or not self.in_speech
            or not self.turn_words
            or self.last_final_end is None
            or self.likely_over_sent == self.last_final_end
            or not isinstance(total, int | float)
        ):
            return False
        return self.offset_ms + float(total) - self.last_final_end >= self.likely_over_ms

    def _time(self, value: Any) -> float | None:
        return None if not isinstance(value, int | float) else self.offset_ms + float(value)
