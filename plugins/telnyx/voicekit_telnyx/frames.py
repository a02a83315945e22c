"""Parse and build Telnyx media-stream frames (PROTOCOLS.md §3a). Pure, no I/O.

Sequence numbers, chunks and timestamps are strings on the wire. Only the inbound track
is caller audio. Anything malformed raises :class:`BadFrame`, which the stream logs,
counts and skips.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from voicekit.audio import AudioFormat

__all__ = [
    "CODECS",
    "BadFrame",
    "Connected",
    "MediaFrame",
    "StartFrame",
    "clear_frame",
    "mark_frame",
    "media_frame",
    "parse_frame",
]

MAX_FRAME_BYTES = 256 * 1024  # a 20 ms frame is ~300 bytes; anything near this is abuse

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


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _format(media_format: Any) -> AudioFormat:
    if not isinstance(media_format, dict):
        return CODECS["PCMU"]
    codec = str(media_format.get("encoding", "PCMU")).upper()
    base = CODECS.get(codec)
    if base is None:
        raise BadFrame("unsupported_codec", f"media_format.encoding {codec!r}")
    rate = _int(media_format.get("sample_rate")) or base.sample_rate
    channels = _int(media_format.get("channels")) or 1
    return AudioFormat(base.encoding, rate, channels)


def parse_frame(raw: str | bytes) -> Frame:
    if len(raw) > MAX_FRAME_BYTES:
        raise BadFrame("oversized", f"{len(raw)} bytes")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadFrame("bad_json", str(exc)) from None
    if not isinstance(data, dict):
        raise BadFrame("bad_json", "not an object")
    event = data.get("event")
    if event == "media":
        media = data.get("media")
        if not isinstance(media, dict) or not isinstance(media.get("payload"), str):
            raise BadFrame("bad_media", "no media.payload")
        try:
            payload = base64.b64decode(media["payload"], validate=True)
        except (binascii.Error, ValueError):
            raise BadFrame("bad_base64", "media.payload is not base64") from None
        return MediaFrame(
            str(media.get("track", "inbound")), payload, _int(data.get("sequence_number"))
        )
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
            stream_id=data.get("stream_id"),
            call_control_id=start.get("call_control_id"),
            from_number=start.get("from"),
            to_number=start.get("to"),
            client_state=start.get("client_state"),
            format=_format(start.get("media_format")),
            custom_parameters=params if isinstance(params, dict) else {},
        )
    if event == "dtmf":
        dtmf = data.get("dtmf")
        digit = dtmf.get("digit") if isinstance(dtmf, dict) else None
        if not isinstance(digit, str):
            raise BadFrame("bad_dtmf", "no dtmf.digit")
        return DtmfFrame(digit)
    if event == "mark":
        mark = data.get("mark")
        name = mark.get("name") if isinstance(mark, dict) else None
        if not isinstance(name, str):
            raise BadFrame("bad_mark", "no mark.name")
        return MarkFrame(name)
    if event == "stop":
        return StopFrame()
    if event == "error":
        raw_info = data.get("payload")
        info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
        return ErrorFrame(info.get("code"), str(info.get("title", "")), str(info.get("detail", "")))
    raise BadFrame("unknown_event", repr(event)[:40])


def media_frame(audio: bytes) -> str:
    return json.dumps(
        {"event": "media", "media": {"payload": base64.b64encode(audio).decode("ascii")}}
    )


def mark_frame(name: str) -> str:
    return json.dumps({"event": "mark", "mark": {"name": name}})


def clear_frame() -> str:
    return '{"event": "clear"}'
