"""Parse and build Telnyx media-stream frames (PROTOCOLS.md §3a). Pure, no I/O.

Sequence numbers, chunks and timestamps are strings on the wire. Only the inbound track
is caller audio. Anything malformed raises :class:`BadFrame`, which the stream logs,
counts and skips.

JSON is read with orjson: a call's media socket brings 50 frames a second, and orjson
reads one in a third of the standard library's time. It is also the stricter reader a
socket from the internet needs: UTF-8 only (bytes in UTF-16 or UTF-32 are refused, as
are lone surrogates), no NaN or Infinity, numbers that fit a double, and nesting no
deeper than 1024 (the standard library recurses until Python's own limit).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any, NoReturn

from voicekit.audio import AudioFormat

try:
    from orjson import JSONDecodeError as _JSONError
    from orjson import loads as _json
except ModuleNotFoundError:  # no telnyx extra: the plugin still registers, and creating
    # its provider names what to install (as for nacl); reading a frame says so too.
    _JSONError = ValueError  # type: ignore[misc,assignment]

    def _json(raw: str | bytes) -> NoReturn:  # type: ignore[misc]
        raise ModuleNotFoundError(
            "voicekit_telnyx reads media frames with orjson, which its extra installs: "
            "pip install 'voicekit[telnyx]'",
            name="orjson",
        )


__all__ = [
    "CODECS",
    "BadFrame",
    "Connected",
    "MediaFrame",
    "StartFrame",
    "clear_frame",
    "inbound_audio",
    "mark_frame",
    "media_frame",
    "parse_frame",
]

MAX_FRAME_BYTES = 64 * 1024  # a 20 ms frame is ~300 bytes; [server] max_message_bytes

# Telnyx codec name -> the format of its RTP payload.
CODECS: dict[str, AudioFormat] = {
    "PCMU": AudioFormat("mulaw", 8000),
    "PCMA": AudioFormat("alaw", 8000),
    "L16": AudioFormat("pcm_s16le", 16000),
}


class BadFrame(ValueError):
    """A frame that cannot be used; ``kind`` names the problem for the counters."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Connected:
    token: str | None


@dataclass(frozen=True, slots=True)
class StartFrame:
    stream_id: str | None
    call_control_id: str | None
    from_number: str | None
    to_number: str | None
    client_state: str | None
    format: AudioFormat
    custom_parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MediaFrame:
    track: str
    payload: bytes
    sequence: int | None


@dataclass(frozen=True, slots=True)
class DtmfFrame:
    digit: str


@dataclass(frozen=True, slots=True)
class MarkFrame:
    name: str


@dataclass(frozen=True, slots=True)
class StopFrame:
    pass


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    code: Any
    title: str
    detail: str


Frame = Connected | StartFrame | MediaFrame | DtmfFrame | MarkFrame | StopFrame | ErrorFrame


# Rates a Telnyx stream's ``start`` may announce for each codec (PROTOCOLS.md §3a): G.711
# is 8 kHz by definition; L16 is 16 kHz per the guide, other rates per the SDK's enum.
CODEC_RATES: dict[str, frozenset[int]] = {
    "PCMU": frozenset({8000}),
    "PCMA": frozenset({8000}),
    "L16": frozenset({8000, 16000, 22050, 24000, 48000}),
}
DTMF_DIGITS = frozenset("0123456789*#ABCDabcd")
MAX_NAME_CHARS = 256  # mark names and identifiers: ours are short, anything longer is junk


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # None, "x", 1e400, 5000 digits
        return None


def _str(value: Any) -> str | None:
    """A short string field, or None for anything else (numbers, objects, megabytes)."""
    return value if isinstance(value, str) and len(value) <= MAX_NAME_CHARS else None


def _format(media_format: Any) -> AudioFormat:
    """The inbound format a ``start`` announces; :class:`BadFrame` ``bad_start`` if the
    stream cannot be taken (the stream is then refused, not guessed at)."""
    if media_format is None:
        return CODECS["PCMU"]  # Telnyx's default codec
    if not isinstance(media_format, dict):
        raise BadFrame("bad_start", "media_format is not an object")
    codec = _str(media_format.get("encoding", "PCMU"))
    if codec is None or codec.upper() not in CODECS:
        raise BadFrame("bad_start", f"unsupported media_format.encoding {codec!r:.40}")
    codec = codec.upper()
    base = CODECS[codec]
    raw_rate = media_format.get("sample_rate")
    rate = base.sample_rate if raw_rate is None else _int(raw_rate)
    if rate not in CODEC_RATES[codec]:
        raise BadFrame("bad_start", f"{codec} at sample_rate {raw_rate!r:.20} is not supported")
    raw_channels = media_format.get("channels")
    if raw_channels is not None and _int(raw_channels) != 1:
        raise BadFrame("bad_start", f"only mono streams are supported, got {raw_channels!r:.20}")
    return AudioFormat(base.encoding, rate, 1)


def _loads(raw: str | bytes) -> Any:
    try:
        return _json(raw)
    except _JSONError as exc:  # also: too deep, too big a number, not UTF-8
        raise BadFrame("bad_json", str(exc)[:80]) from None


def _base64(text: str) -> bytes:
    """Strict base64 (``binascii.Error``, a ValueError, for anything else), in C: the
    ``base64`` module's ``validate=True`` checks the alphabet with a regular expression
    first."""
    return binascii.a2b_base64(text, strict_mode=True)


MAX_CUSTOM_PARAMETERS = 64


def _flat_parameters(params: Any) -> dict[str, Any]:
    """A start frame's ``custom_parameters``: names to plain values, as Telnyx sends them
    (at most ``MAX_CUSTOM_PARAMETERS``). Anything nested is dropped: the parameters go
    into the call record, and a value nested 700 deep broke writing it."""
    if not isinstance(params, dict):
        return {}
    flat: dict[str, Any] = {}
    for name, value in params.items():
        if len(flat) == MAX_CUSTOM_PARAMETERS:
            break
        if isinstance(name, str) and (
            value is None
            or isinstance(value, str | int)
            or (isinstance(value, float) and math.isfinite(value))  # NaN is not JSON
        ):
            flat[name] = value
    return flat


def parse_frame(raw: str | bytes, *, max_bytes: int = MAX_FRAME_BYTES) -> Frame:
    """One frame from the wire; :class:`BadFrame` for anything that is not a usable frame."""
    if len(raw) > max_bytes:
        raise BadFrame("oversized", f"{len(raw)} bytes")
    data = _loads(raw)
    if not isinstance(data, dict):
        raise BadFrame("bad_json", "not an object")
    event = data.get("event")
    if event == "media":
        media = data.get("media")
        if not isinstance(media, dict) or not isinstance(media.get("payload"), str):
            raise BadFrame("bad_media", "no media.payload")
        try:
            payload = _base64(media["payload"])
        except ValueError:  # binascii.Error, or a payload that is not ASCII
            raise BadFrame("bad_base64", "media.payload is not base64") from None
        track = media.get("track", "inbound")
        if not isinstance(track, str):
            raise BadFrame("bad_media", "media.track is not a string")
        return MediaFrame(track, payload, _int(data.get("sequence_number")))
    if event == "connected":
        token = data.get("stream_auth_token")
        nested = data.get("connected")
        if token is None and isinstance(nested, dict):
            token = nested.get("stream_auth_token")
        return Connected(token if isinstance(token, str) else None)
    if event == "start":
        start = data.get("start")
        if not isinstance(start, dict):
            raise BadFrame("bad_start", "no start object")
        params = start.get("custom_parameters")
        return StartFrame(
            stream_id=_str(data.get("stream_id")),
            call_control_id=_str(start.get("call_control_id")),
            from_number=_str(start.get("from")),
            to_number=_str(start.get("to")),
            client_state=_str(start.get("client_state")),
            format=_format(start.get("media_format")),
            custom_parameters=_flat_parameters(params),
        )
    if event == "dtmf":
        dtmf = data.get("dtmf")
        digit = dtmf.get("digit") if isinstance(dtmf, dict) else None
        if not isinstance(digit, str) or len(digit) != 1 or digit not in DTMF_DIGITS:
            raise BadFrame("bad_dtmf", "dtmf.digit is not one of 0-9 * # A-D")
        return DtmfFrame(digit.upper())
    if event == "mark":
        mark = data.get("mark")
        name = _str(mark.get("name")) if isinstance(mark, dict) else None
        if name is None:
            raise BadFrame("bad_mark", "no usable mark.name")
        return MarkFrame(name)
    if event == "stop":
        return StopFrame()
    if event == "error":
        raw_info = data.get("payload")
        info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
        return ErrorFrame(
            _int(info.get("code")),
            str(info.get("title", ""))[:120],
            str(info.get("detail", ""))[:200],
        )
    raise BadFrame("unknown_event", repr(event)[:40])


def inbound_audio(raw: str | bytes) -> bytes | None:
    """The caller's audio in a media frame of the inbound track, or None for any other
    frame and anything malformed (:func:`parse_frame` then says what it is).

    The path of every caller frame from the socket's callback: one read of the JSON, no
    frame object. The caller checks the size first.
    """
    try:
        data = _json(raw)
    except _JSONError:
        return None
    if type(data) is not dict or data.get("event") != "media":
        return None
    media = data.get("media")
    if type(media) is not dict or media.get("track", "inbound") != "inbound":
        return None
    payload = media.get("payload")
    if type(payload) is not str:
        return None
    try:
        return _base64(payload)
    except ValueError:
        return None


def media_frame(audio: bytes) -> str:
    # What json.dumps gives for this object, without building it: base64 needs no escaping,
    # and this runs for every outbound message of every call.
    return '{"event": "media", "media": {"payload": "' + base64.b64encode(audio).decode() + '"}}'


def mark_frame(name: str) -> str:
    return json.dumps({"event": "mark", "mark": {"name": name}})


def clear_frame() -> str:
    return '{"event": "clear"}'
