"""Resuming a reply that a false barge-in cut short.

A barge-in is decided on partial words; sometimes the caller's turn then turns out to
be nothing (noise the STT takes back) or only a backchannel ("uh-huh"). The agent then
goes on from the first word the caller did not hear, instead of leaving them in
silence. Only a reply whose text was complete when it was cut can go on: a sentence the
LLM had not finished writing is not made up.
"""

from __future__ import annotations

from dataclasses import dataclass

from voicekit.session.bargein import words
from voicekit.session.reply import Reply

__all__ = ["CutReply", "unheard_text"]

RESUMABLE_KINDS = ("answer", "greeting", "prompt", "resume")


def unheard_text(reply: Reply) -> str:
    """The reply's text after the words the caller heard (whole words, as written)."""
    heard = len(words(reply.heard_text()))
    written = reply.text.split()
    seen = 0
    for i, token in enumerate(written):
        if seen >= heard:
            return " ".join(written[i:])
        seen += len(words(token))
    return ""


@dataclass(frozen=True, slots=True)
class CutReply:
    """A reply cut by a barge-in that may be resumed, and what is left of it."""

    reply_id: int
    remainder: str

    @classmethod
    def of(cls, reply: Reply) -> CutReply | None:
        if reply.kind not in RESUMABLE_KINDS or not reply.text_complete:
            return None
        if reply.kind == "resume" and not reply.heard_text():
            return None  # cut again before a word was heard: no endless restarts
        remainder = unheard_text(reply)
        return cls(reply.id, remainder) if remainder else None
