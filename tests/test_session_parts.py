"""The session's small parts: negotiation, history, spoken-text mapping, barge-in rules."""

from __future__ import annotations

from voicekit.audio import ALAW_8K, PCM_8K, PCM_16K, PCM_24K, ULAW_8K
from voicekit.session import ConversationHistory, SpokenText, choose_format
from voicekit.session.bargein import is_echo, is_interruption
from voicekit.session.voicemail import VoicemailDetector


def test_choose_format_prefers_least_work() -> None:
    assert choose_format(ULAW_8K, [PCM_16K, ULAW_8K]) == ULAW_8K
    assert choose_format(ALAW_8K, [PCM_16K, PCM_8K, ULAW_8K]) == PCM_8K
    assert choose_format(ALAW_8K, [PCM_16K, ULAW_8K]) == ULAW_8K
    assert choose_format(ULAW_8K, [PCM_24K, PCM_16K]) == PCM_24K


def test_history_merges_caller_turns_and_truncates_the_agent() -> None:
    h = ConversationHistory("Be nice.", knowledge="Hours: 9-5.", window=2)
    h.add_user("hi")
    h.add_user("there")
    i = h.add_assistant("Hello! How can I help you today?")
    h.set_assistant(i, "Hello!")
    assert [(m.role, m.content) for m in h.turns] == [("user", "hi there"), ("assistant", "Hello!")]
    h.set_assistant(i, "")
    assert [m.role for m in h.turns] == ["user"]
    for n in range(3):
        h.add_assistant(f"a{n}")
        h.add_user(f"u{n}")
    msgs = h.messages()
    assert msgs[0].role == "system" and "Hours: 9-5." in msgs[0].content
    assert [m.content for m in msgs[1:]] == ["u1", "a2", "u2"]


def test_spoken_text_with_alignment_keeps_whole_words() -> None:
    s = SpokenText()
    s.add_text("Hi there you ")
    ends = s.add_audio(780, tuple("Hi there you "), tuple(range(0, 780, 60)), (60,) * 13)
    assert ends == [120.0, 480.0, 720.0]
    assert s.heard(0) == ""
    assert s.heard(119) == ""
    assert s.heard(120) == "Hi"
    assert s.heard(470) == "Hi"
    assert s.heard(480) == "Hi there"
    assert s.heard(10_000) == "Hi there you"


def test_spoken_text_without_alignment_estimates() -> None:
    s = SpokenText()
    s.add_text("one two three four ")
    s.add_audio(1900)
    s.complete = True
    assert s.heard(1000) == "one two"  # 10 of 19 characters: "one two th" -> whole words
    assert s.heard(1900) == "one two three four"


def test_barge_in_rules() -> None:
    agent = "Our opening hours are nine to five."
    assert is_echo("nine to five", agent) and not is_echo("nine to six", agent)
    assert not is_interruption("stop", agent, min_words=2, echo_filter=True)
    assert is_interruption("stop please", agent, min_words=2, echo_filter=True)
    assert not is_interruption("opening hours", agent, min_words=2, echo_filter=True)
    assert is_interruption("opening hours", agent, min_words=2, echo_filter=False)


def test_voicemail_detector() -> None:
    d = VoicemailDetector(["leave a message", "after the tone"])
    assert d.matches("Please LEAVE a message.") == "leave a message"
    assert d.matches("I'd like to leave now") is None
