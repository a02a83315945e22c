"""A seeded generator of malformed Telnyx media frames, for fuzz tests.

Every frame it makes is one a real Telnyx stream would never send: broken JSON, JSON of the
wrong shape, known events with fields of the wrong type or size, numbers no parser
expects, deep nesting, binary junk. None of them is a well-formed ``stop``, which would
rightly end the call.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from typing import Any

EVENTS = ["media", "start", "dtmf", "mark", "error", "connected", "clear", "party", "", None, 7]
ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**70,
    1.5,
    "",
    "x" * 3000,
    [],
    {},
    [[[[]]]],
    {"a": {"b": {"c": None}}},
    "t\u00f6k\u00e9n",
]


def _odd(rng: random.Random) -> Any:
    return rng.choice(ODD_VALUES)


def _broken_text(rng: random.Random) -> str | bytes:
    kind = rng.randrange(9)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 400))  # binary junk, often invalid UTF-8
    if kind == 1:
        return "[" * rng.randrange(2000, 30_000)  # nesting deeper than any parser's stack
    if kind == 2:
        depth = rng.randrange(1000, 20_000)
        return '{"event": "media", "media": ' + "[" * depth + "]" * depth + "}"
    if kind == 3:
        return "9" * rng.randrange(4400, 9000)  # past int() digit limits
    if kind == 4:
        return rng.choice(["1e400", "-1e400", "NaN", "Infinity", "null", "true", '"text"'])
    if kind == 5:
        return json.dumps([rng.random() for _ in range(rng.randrange(1, 50))])
    if kind == 6:
        return "{" + rng.randbytes(50).hex()
    if kind == 7:
        return '{"event": "media", "media": {"payload": "' + "%" * rng.randrange(1, 200) + '"}}'
    return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 200)))


def _wrong_shape(rng: random.Random) -> str:
    event = rng.choice(EVENTS)
    frame: dict[str, Any] = {"event": event}
    if event == "media":
        media: dict[str, Any] = {}
        choice = rng.randrange(5)
        if choice == 0:
            media["payload"] = _odd(rng)
        elif choice == 1:
            media["payload"] = base64.b64encode(rng.randbytes(160)).decode()
            media["track"] = _odd(rng)
        elif choice == 2:
            media["payload"] = base64.b64encode(rng.randbytes(160)).decode()[:-3] + "!!!"
        elif choice == 3:
            frame["media"] = _odd(rng)
        else:
            media["payload"] = base64.b64encode(rng.randbytes(160)).decode()
            media["track"] = "outbound"  # not the caller: ignored
            frame["sequence_number"] = _odd(rng)
        frame.setdefault("media", media)
    elif event == "start":
        frame["start"] = rng.choice(
            [
                _odd(rng),
                {"media_format": _odd(rng)},
                {"media_format": {"encoding": "L16", "sample_rate": _odd(rng)}},
                {"media_format": {"encoding": "PCMU", "sample_rate": 500, "channels": 9}},
                {"call_control_id": _odd(rng), "media_format": {"encoding": "OPUS"}},
            ]
        )
    elif event == "dtmf":
        frame["dtmf"] = rng.choice([_odd(rng), {"digit": _odd(rng)}, {"digit": "55"}])
    elif event == "mark":
        frame["mark"] = rng.choice([_odd(rng), {"name": _odd(rng)}, {"name": "r9999.1"}])
    elif event == "error":
        frame["payload"] = rng.choice([_odd(rng), {"code": _odd(rng), "title": _odd(rng)}])
    else:
        frame[rng.choice(["payload", "stop", "x"])] = _odd(rng)
    return json.dumps(frame)


def malformed_frames(count: int, *, seed: int = 20261202) -> Iterator[str | bytes]:
    """``count`` malformed frames, the same ones for the same seed."""
    rng = random.Random(seed)
    for _ in range(count):
        yield _broken_text(rng) if rng.random() < 0.4 else _wrong_shape(rng)
