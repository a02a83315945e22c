"""What max_calls counts and what a media token admits (voicekit.server.live)."""

from __future__ import annotations

from voicekit.server.live import LiveCalls


def test_a_call_counts_from_reservation_and_admits_one_connection() -> None:
    live = LiveCalls(2, pending_ttl_s=300)
    assert live.reserve("a") and live.reserve("b")
    assert not live.reserve("c")  # two calls ringing fill the server
    assert live.reserve("a") and len(live) == 2  # the same call again: not twice
    first = live.admit("a")
    assert first.admitted and first.call_id == "a"
    assert live.admit("a").refusal == "call already connected"
    assert live.admit("zzz").refusal == "unknown call"
    assert live.end("a") and not live.end("a")
    assert live.admit("a").refusal == "call ended"
    assert live.reserve("c")  # its place is free again


def test_a_dialled_call_is_known_by_its_dial_id_until_identified() -> None:
    live = LiveCalls(5, pending_ttl_s=300)
    assert live.reserve("dial-1")
    live.identify("dial-1", "v3:real")
    admission = live.admit("dial-1")
    assert admission.admitted and admission.call_id == "v3:real"
    assert live.connected("v3:real")
    assert live.end("v3:real")  # a hang-up webhook names the provider's call id
    assert len(live) == 0


def test_a_call_whose_media_never_came_stops_counting_when_its_token_expires() -> None:
    now = [1000.0]
    live = LiveCalls(1, pending_ttl_s=300, clock=lambda: now[0])
    assert live.reserve("a")
    now[0] = 1299.0
    assert not live.reserve("b")
    now[0] = 1301.0
    assert live.reserve("b")  # "a" expired: its token could open nothing now
    assert live.admit("a").refusal == "call ended"
