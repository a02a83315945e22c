"""The session's small parts: negotiation, history, spoken-text mapping, barge-in rules."""

from __future__ import annotations

import pytest

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


def test_silence_policy() -> None:
    from voicekit.session.silence import SilencePolicy

    p = SilencePolicy(idle_timeout_s=8.0, prompts=2, max_call_seconds=60.0)
    kw = {"started": 0.0, "last_activity": 10.0}
    assert p.decide(now=12.0, quiet=True, prompted=0, **kw) == ("wait", 18.0)
    assert p.decide(now=18.0, quiet=True, prompted=0, **kw) == ("prompt", 18.0)
    assert p.decide(now=18.0, quiet=True, prompted=2, **kw) == ("hang_up_idle", 18.0)
    assert p.decide(now=18.0, quiet=False, prompted=0, **kw) == ("wait", 26.0)
    assert p.decide(now=60.0, quiet=False, prompted=0, **kw)[0] == "hang_up_max_length"
    assert p.decide(now=55.0, quiet=True, prompted=0, started=0.0, last_activity=50.0) == (
        "wait",
        58.0,
    )
    assert p.decide(now=57.0, quiet=True, prompted=0, started=0.0, last_activity=56.0) == (
        "wait",
        60.0,
    )


def test_caller_turns_accumulate_until_end_of_turn() -> None:
    from voicekit.session.caller import CallerTurns
    from voicekit.stt import SpeechStarted, Transcript

    c = CallerTurns()
    c.hear(SpeechStarted())
    c.hear(Transcript("book a", is_final=False))
    assert c.speaking and c.text == "book a"
    c.hear(Transcript("book a table", is_final=True))
    c.hear(Transcript("for two", is_final=False))
    assert c.text == "book a table for two"
    assert c.end_turn() == "book a table for two" and c.turns == 1 and not c.speaking
    assert c.end_turn() == "" and c.turns == 1


def test_inbound_clock_maps_audio_position_to_arrival() -> None:
    from voicekit.session.inbound_clock import InboundClock

    clock = InboundClock(keep=6)
    for i in range(10):
        clock.received(20.0, at=100.0 + i * 0.02)
    assert clock.arrival(None) is None
    assert clock.arrival(190.0) == 100.18  # position 190 ms arrived in the 10th chunk
    assert clock.arrival(10_000) == 100.18


def test_far_end_playback_follows_telnyx() -> None:
    from voicekit.testing.playback import FarEndPlayback

    far = FarEndPlayback()
    far.mark(0.0, "idle")  # nothing playing: due at once
    assert far.take_due(0.0) == ["idle"]
    assert far.audio(1.0, 0.02) == (1.0, 1.02)
    assert far.audio(1.005, 0.02) == (1.02, 1.04)  # back to back
    far.mark(1.01, "a")
    assert far.take_due(1.03) == [] and far.next_due() == 1.04
    assert far.take_due(1.04) == ["a"]
    far.audio(2.0, 1.0)
    far.mark(2.0, "b")
    far.clear(2.5)  # clear: playback stops, pending marks are echoed at once
    assert far.take_due(2.5) == ["b"] and far.end == 2.5


def test_turn_metrics_steps_and_ttfa() -> None:
    from voicekit.records import TurnMetrics

    m = TurnMetrics(
        turn_index=1,
        user_speech_end=10.0,
        stt_end_of_turn=10.3,
        llm_first_token=10.55,
        first_frame_sent=10.9,
    )
    assert m.ttfa_ms == pytest.approx(900.0)
    steps = m.steps_ms()
    assert list(steps) == [
        "user_speech_end->stt_end_of_turn",
        "stt_end_of_turn->llm_first_token",
        "llm_first_token->first_frame_sent",
    ]
    assert steps["stt_end_of_turn->llm_first_token"] == pytest.approx(250.0)


@pytest.mark.anyio
async def test_a_replys_playback_moves_only_forward_through_its_life() -> None:
    from voicekit.records import TurnMetrics
    from voicekit.session.reply import Reply

    reply = Reply(id=1, kind="answer", metrics=TurnMetrics(turn_index=1))
    assert reply.state == "confirmed" and not reply.started_playing
    assert reply.advance("speaking") and not reply.advance("speaking")  # once
    assert reply.playing and not reply.played.is_set()
    assert reply.advance("played") and reply.played.is_set()
    assert not reply.advance("interrupted")  # a reply that played was not cut
    assert reply.outcome(caller_gone=False) == "played"
    cut = Reply(id=2, kind="answer", metrics=TurnMetrics(turn_index=2))
    assert cut.advance("speaking") and cut.advance("interrupted")
    assert not cut.advance("played") and not cut.played.is_set()  # a late final mark
    assert cut.interrupted and cut.outcome(caller_gone=False) == "interrupted"
    silent = Reply(id=3, kind="answer", metrics=TurnMetrics(turn_index=3))
    assert silent.advance("played")  # no audio at all: nothing to wait for
    guess = Reply(id=4, kind="answer", metrics=TurnMetrics(0), state="speculative")
    assert guess.speculative and not guess.confirmed.is_set() and guess.held == []
    assert not guess.advance("speaking") and not guess.advance("interrupted")  # unheard yet
    assert guess.advance("confirmed") and guess.confirmed.is_set()
    assert not guess.advance("discarded")  # once heard, it is the reply
    dropped = Reply(id=5, kind="answer", metrics=TurnMetrics(0), state="speculative")
    assert dropped.advance("discarded") and dropped.discarded
    assert not dropped.advance("confirmed") and not dropped.confirmed.is_set()
