"""SentenceSegmenter: a table of replies, each fed whole and one character at a time.

Both feedings must give exactly the expected pieces; that is what proves the segmenter
decides on the text alone, never on how the LLM happened to chunk it.
"""

from __future__ import annotations

import pytest

from voicekit.text import SentenceSegmenter, clean_segment

# (id, text, expected pieces). Default settings: first clause >= 10 chars, max 220.
CASES: list[tuple[str, str, list[str]]] = [
    # -- sentences and the first-clause fast path
    ("one sentence", "Hello there.", ["Hello there."]),
    ("two sentences", "Hello there. How are you?", ["Hello there.", "How are you?"]),
    ("exclaim", "Great! See you soon.", ["Great!", "See you soon."]),
    ("question then answer", "Why? Because.", ["Why?", "Because."]),
    ("no final punctuation", "Hello there", ["Hello there"]),
    (
        "first clause fast path",
        "Let me check that for you, it will take a second. Thanks.",
        ["Let me check that for you,", "it will take a second.", "Thanks."],
    ),
    (
        "short first clause waits",
        "Sure, I can help with that. What time?",
        ["Sure, I can help with that.", "What time?"],
    ),
    (
        "only the first clause is fast",
        "Let me look at that, one moment, please. Then, we go on.",
        ["Let me look at that,", "one moment, please.", "Then, we go on."],
    ),
    (
        "semicolon clause",
        "That slot is taken; the next one is free. Ok?",
        ["That slot is taken;", "the next one is free.", "Ok?"],
    ),
    (
        "colon clause",
        "Here is what I found: two slots. Pick one.",
        ["Here is what I found:", "two slots.", "Pick one."],
    ),
    (
        "em dash clause",
        "I checked the calendar — nothing is free. Sorry.",
        ["I checked the calendar —", "nothing is free.", "Sorry."],
    ),
    ("interrobang", "You did what?! Wow.", ["You did what?!", "Wow."]),
    ("multiple spaces", "One.   Two.  Three.", ["One.", "Two.", "Three."]),
    ("leading space", "  Hello. Bye.", ["Hello.", "Bye."]),
    ("whitespace only", "   ", []),
    ("empty", "", []),
    # -- abbreviations
    ("mr", "Mr. Jones will call you back.", ["Mr. Jones will call you back."]),
    (
        "mrs and ms",
        "Mrs. Lee and Ms. Park are here. Next.",
        ["Mrs. Lee and Ms. Park are here.", "Next."],
    ),
    ("dr", "Dr. Smith is in today. Shall I book?", ["Dr. Smith is in today.", "Shall I book?"]),
    ("st", "We are on St. Mark's Place. Come by.", ["We are on St. Mark's Place.", "Come by."]),
    (
        "e.g.",
        "Bring an ID, e.g. a passport. Thanks.",
        ["Bring an ID,", "e.g. a passport.", "Thanks."],
    ),
    ("i.e.", "Come early, i.e. at nine. Bye.", ["Come early,", "i.e. at nine.", "Bye."]),
    (
        "etc mid",
        "We stock pears etc. in the shop. Ok.",
        ["We stock pears etc. in the shop.", "Ok."],
    ),
    (
        "etc end",
        "We sell apples, pears, etc. What do you need?",
        ["We sell apples,", "pears, etc.", "What do you need?"],
    ),
    ("vs", "It is red vs. blue today. Pick.", ["It is red vs. blue today.", "Pick."]),
    ("a.m. mid", "Open at 9 a.m. on weekdays. Bye.", ["Open at 9 a.m. on weekdays.", "Bye."]),
    ("p.m. end", "We close at 5 p.m. See you then.", ["We close at 5 p.m.", "See you then."]),
    ("u.s. mid", "We ship in the U.S. and Canada. Ok.", ["We ship in the U.S. and Canada.", "Ok."]),
    (
        "u.s. end",
        "We only ship in the U.S. Is that ok?",
        ["We only ship in the U.S.", "Is that ok?"],
    ),
    ("initials", "It was J. R. R. Tolkien. Classic.", ["It was J. R. R. Tolkien.", "Classic."]),
    (
        "inc end",
        "I work for Acme Inc. How can I help?",
        ["I work for Acme Inc.", "How can I help?"],
    ),
    ("no. number", "Your ticket is No. 42. Keep it.", ["Your ticket is No. 42.", "Keep it."]),
    # -- numbers, prices, times
    ("decimal", "It costs 3.50 today. Ok?", ["It costs 3.50 today.", "Ok?"]),
    (
        "price with comma",
        "The total is $1,299.99 with tax. Shall I charge it?",
        ["The total is $1,299.99 with tax.", "Shall I charge it?"],
    ),
    (
        "time",
        "Your slot is at 10:30 on Monday. Does that work?",
        ["Your slot is at 10:30 on Monday.", "Does that work?"],
    ),
    ("number ends sentence", "I count 3. Then stop.", ["I count 3.", "Then stop."]),
    (
        "version",
        "Update to version 2.4.1 first. Then retry.",
        ["Update to version 2.4.1 first.", "Then retry."],
    ),
    ("percent", "Rates rose 4.5% this year. Sorry.", ["Rates rose 4.5% this year.", "Sorry."]),
    (
        "big number comma",
        "We have 12,000 customers, and growing. Yes.",
        ["We have 12,000 customers,", "and growing.", "Yes."],
    ),
    ("phone number", "Call 555.123.4567 now. Thanks.", ["Call 555.123.4567 now.", "Thanks."]),
    # -- URLs, e-mail, ellipses, quotes and brackets
    (
        "url",
        "Visit https://example.com/help?q=1 for more. Bye.",
        ["Visit https://example.com/help?q=1 for more.", "Bye."],
    ),
    ("domain", "Go to example.com today. Thanks.", ["Go to example.com today.", "Thanks."]),
    (
        "url at sentence end",
        "See www.acme.co.uk. Then call.",
        ["See www.acme.co.uk.", "Then call."],
    ),
    (
        "email",
        "Write to help@acme.com for a refund. Ok?",
        ["Write to help@acme.com for a refund.", "Ok?"],
    ),
    (
        "email at end",
        "Mail jane.doe@example.org. Thanks.",
        ["Mail jane.doe@example.org.", "Thanks."],
    ),
    ("ellipsis lower", "Well... maybe later. Ok.", ["Well... maybe later.", "Ok."]),
    ("ellipsis upper", "Hmm... Let me think. Yes.", ["Hmm...", "Let me think.", "Yes."]),
    ("unicode ellipsis", "Hmm… let me see. Yes.", ["Hmm… let me see.", "Yes."]),
    ("closing quote", 'He said "Hi." Then he left.', ['He said "Hi."', "Then he left."]),
    ("closing curly quote", "She said “Sure.” Then left.", ["She said “Sure.”", "Then left."]),
    ("closing bracket", "It is free (for now.) Enjoy.", ["It is free (for now.)", "Enjoy."]),
    ("question in quotes", 'He asked "Why?" and left. Ok.', ['He asked "Why?" and left.', "Ok."]),
    # -- SSML / XML tags
    (
        "ssml break",
        'Hello.<break time="1.5s"/> How are you?',
        ['Hello.<break time="1.5s"/> How are you?'],
    ),
    (
        "ssml break spaced",
        'One moment. <break time="0.5s"/> Done.',
        ["One moment.", '<break time="0.5s"/> Done.'],
    ),
    (
        "ssml phoneme",
        'Say <phoneme alphabet="ipa" ph="t.o">tomato</phoneme> now. Ok.',
        ['Say <phoneme alphabet="ipa" ph="t.o">tomato</phoneme> now.', "Ok."],
    ),
    ("less than is not a tag", "If x < 3. Then stop.", ["If x < 3.", "Then stop."]),
    # -- markdown that should not be spoken
    ("bold", "This is **very** important. Ok.", ["This is very important.", "Ok."]),
    ("heading", "# Summary\nAll good.", ["Summary", "All good."]),
    ("bullets", "Options:\n- red\n- blue\n* green", ["Options:", "red", "blue", "green"]),
    (
        "numbered list",
        "Steps:\n1. Open the app\n2. Tap go",
        ["Steps:", "1. Open the app", "2. Tap go"],
    ),
    ("inline code", "Type `reset` now. Ok.", ["Type reset now.", "Ok."]),
    (
        "bold label",
        "**Note:** the office is closed. Sorry.",
        ["Note: the office is closed.", "Sorry."],
    ),
    ("markdown only", "**\n---", []),
    ("blank lines", "First.\n\nSecond.", ["First.", "Second."]),
]


def feed_whole(text: str) -> list[str]:
    seg = SentenceSegmenter()
    return seg.push(text) + seg.flush()


def feed_chars(text: str) -> list[str]:
    seg = SentenceSegmenter()
    out: list[str] = []
    for ch in text:
        out += seg.push(ch)
    return out + seg.flush()


@pytest.mark.parametrize("text,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_pieces_fed_whole(text: str, expected: list[str]) -> None:
    assert feed_whole(text) == expected


@pytest.mark.parametrize("text,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_pieces_fed_one_character_at_a_time(text: str, expected: list[str]) -> None:
    assert feed_chars(text) == expected


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 60


def test_pieces_come_out_as_soon_as_decidable() -> None:
    seg = SentenceSegmenter()
    assert seg.push("Let me check that for you,") == []  # is it "you," + space? wait
    assert seg.push(" one") == ["Let me check that for you,"]
    assert seg.push(" moment. Thanks") == ["one moment."]
    assert seg.push(".") == []  # end of stream or more text? only flush can say
    assert seg.flush() == ["Thanks."]


def test_over_long_sentence_is_cut_at_a_clause_then_a_space() -> None:
    seg = SentenceSegmenter(max_chars=40)
    text = "This sentence keeps going, and going on and on without any stop at all for ages"
    pieces = seg.push(text) + seg.flush()
    assert pieces[0] == "This sentence keeps going,"
    assert all(len(p) <= 40 for p in pieces)
    assert " ".join(pieces) == text
    chars = SentenceSegmenter(max_chars=40)
    out: list[str] = []
    for ch in text:
        out += chars.push(ch)
    assert out + chars.flush() == pieces


def test_first_clause_minimum_is_configurable() -> None:
    seg = SentenceSegmenter(first_clause_min_chars=3)
    assert seg.push("Sure, I can. ") == ["Sure,", "I can."]


def test_flush_resets_for_reuse() -> None:
    seg = SentenceSegmenter()
    assert seg.push("Hello") == [] and seg.flush() == ["Hello"]
    assert seg.push("Again. ") == ["Again."]


def test_clean_segment() -> None:
    assert clean_segment("  - **Bold** item  ") == "Bold item"
    assert clean_segment("## Title") == "Title"
    assert clean_segment("**") == ""
    assert clean_segment("5 * 3 = 15") == "5 * 3 = 15"


def test_random_chunkings_match_whole_feeding() -> None:
    import random

    rng = random.Random(20261121)
    for _, text, expected in CASES:
        for _ in range(15):
            seg = SentenceSegmenter()
            out: list[str] = []
            i = 0
            while i < len(text):
                step = rng.randint(1, 8)
                out += seg.push(text[i : i + step])
                i += step
            assert out + seg.flush() == expected, text
