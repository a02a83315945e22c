"""The call session: turn-taking, the reply pipeline, barge-in and playout."""

from voicekit.session.history import ConversationHistory
from voicekit.session.negotiate import choose_format
from voicekit.session.playout import Playout
from voicekit.session.reply import Reply, ReplyPipeline
from voicekit.session.session import CallSession
from voicekit.session.spoken import SpokenText

__all__ = [
    "CallSession",
    "ConversationHistory",
    "Playout",
    "Reply",
    "ReplyPipeline",
    "SpokenText",
    "choose_format",
]
