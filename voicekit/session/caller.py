"""What the caller has said since their last turn ended."""

from __future__ import annotations

from dataclasses import dataclass, field

from voicekit.stt import SpeechStarted, STTEvent, Transcript

__all__ = ["CallerTurns"]


@dataclass
class CallerTurns:
    """Accumulates final transcripts and the latest partial until ``EndOfTurn``."""

    finals: list[str] = field(default_factory=list)
    partial: str = ""
    speaking: bool = False
    turns: int = 0

    def hear(self, event: STTEvent) -> None:
        """Take a SpeechStarted or Transcript event."""
        self.speaking = True
        if isinstance(event, Transcript):
            if event.is_final:
                self.finals.append(event.text.strip())
                self.partial = ""
            else:
                self.partial = event.text.strip()
        else:
            assert isinstance(event, SpeechStarted)

    @property
    def text(self) -> str:
        """Everything said in the current turn so far, finals then the partial."""
        return " ".join([*self.finals, self.partial]).strip()

    def end_turn(self) -> str:
        """Close the turn; returns its text ("" for noise with no words)."""
        text = self.text
        self.finals.clear()
        self.partial = ""
        self.speaking = False
        if text:
            self.turns += 1
        return text
