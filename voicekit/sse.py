"""Server-sent events read from a byte stream, with a bound on each event's size.

LLM APIs stream their replies as SSE. An HTTP library's line iterator has no bound: a
server (or something between it and us) that sends one endless line would make the
process hold all of it. Here a line or an event larger than ``max_event_bytes`` raises
:class:`EventTooLarge` as soon as it crosses the bound, holding no more than that.

Fields other than ``event`` and ``data`` (``id``, ``retry``) and comment lines
(``: keep-alive``) are skipped; an event's ``data`` lines are joined with newlines, as
the SSE specification says. Lines end in ``\\n``, ``\\r\\n`` or ``\\r``; bytes that are not
UTF-8 are replaced, not fatal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple

__all__ = ["MAX_EVENT_BYTES", "EventTooLarge", "SSEEvent", "sse_events"]

MAX_EVENT_BYTES = 1 << 20


class EventTooLarge(ValueError):
    """An SSE line or event passed the size bound."""


class SSEEvent(NamedTuple):
    event: str | None  # the ``event:`` field, if the server sent one
    data: str


async def sse_events(
    chunks: AsyncIterator[bytes], *, max_event_bytes: int = MAX_EVENT_BYTES
) -> AsyncIterator[SSEEvent]:
    """The events of an SSE body given as raw byte chunks."""
    pending = b""
    event: str | None = None
    data: list[str] = []
    size = 0
    async for chunk in chunks:
        buffer = pending + chunk
        held = b""
        if buffer.endswith(b"\r"):  # perhaps the first half of a \r\n
            buffer, held = buffer[:-1], b"\r"
        lines = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        pending = lines.pop() + held  # an unfinished line, kept for the next chunk
        if len(pending) > max_event_bytes:
            raise EventTooLarge(f"an event line of more than {max_event_bytes} bytes")
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            if not line:
                if data:
                    yield SSEEvent(event, "\n".join(data))
                event, data, size = None, [], 0
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                size += len(raw)
                if size > max_event_bytes:
                    raise EventTooLarge(f"an event of more than {max_event_bytes} bytes")
                data.append(value)
            elif field == "event":
                event = value
    if pending.strip(b"\r"):
        field, _, value = pending.strip(b"\r").decode("utf-8", "replace").partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield SSEEvent(event, "\n".join(data))
