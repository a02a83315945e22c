"""The media WebSocket's own reader of whole data frames, seen from a raw TCP client.

The server reads the common frame itself and leaves everything else to websockets: each
test sends exact bytes (split where it wants) and checks what the app received and how
the connection ended, so a frame the fast path must not take is shown to be handled by
websockets' rules (pong, 1002, 1009, reassembly).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import random
import struct
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream

from voicekit.config.sections import ServerSettings
from voicekit.server.media_socket import MediaWebSocketProtocol
from voicekit.testing.emulators._server import LoopbackServer

pytestmark = pytest.mark.anyio

MAX_BYTES = 4096


class EchoApp:
    """Accepts, then keeps every message it receives and how the socket ended."""

    def __init__(self, accept_after_s: float = 0.0) -> None:
        self.accept_after_s = accept_after_s
        self.messages: list[tuple[str, Any]] = []
        self.disconnect_code: int | None = None
        self.changed = anyio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        await anyio.sleep(self.accept_after_s)
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.disconnect_code = message.get("code")
                self.changed.set()
                return
            kind = "text" if message.get("text") is not None else "bytes"
            self.messages.append((kind, message[kind]))
            self.changed.set()
            self.changed = anyio.Event()

    async def wait(self, count: int) -> None:
        with anyio.fail_after(5):
            while len(self.messages) < count and self.disconnect_code is None:
                await self.changed.wait()


def frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([mask_bit | size])
    elif size < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_frame(stream: SocketStream, buffer: bytearray) -> tuple[int, bytes]:
    """One unmasked frame from the server."""
    while True:
        if len(buffer) >= 2:
            size, at = buffer[1] & 0x7F, 2
            if size == 126 and len(buffer) >= 4:
                size, at = struct.unpack("!H", buffer[2:4])[0], 4
            if size != 126 and len(buffer) >= at + size:
                opcode, payload = buffer[0] & 0x0F, bytes(buffer[at : at + size])
                del buffer[: at + size]
                return opcode, payload
        buffer.extend(await stream.receive())


class Client:
    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def send(self, *chunks: bytes) -> None:
        for chunk in chunks:
            await self.stream.send(chunk)
            await anyio.sleep(0.01)  # separate reads on the server

    async def close_code(self) -> int | None:
        """The code of the server's close frame, or None if it just dropped the socket."""
        with anyio.fail_after(5):
            while True:
                try:
                    opcode, payload = await read_frame(self.stream, self.buffer)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return None
                if opcode == 0x8:
                    return int(struct.unpack("!H", payload[:2])[0]) if payload else None


async def connect(app: EchoApp, before_accept: bytes = b"") -> tuple[LoopbackServer, Client]:
    server = LoopbackServer(app, limits=ServerSettings(max_message_bytes=MAX_BYTES))
    await server.__aenter__()
    stream = await anyio.connect_tcp("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    await stream.send(
        (
            "GET /media HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    if before_accept:
        await anyio.sleep(0.05)  # the request is read; the app has not accepted yet
        await stream.send(before_accept)
    response = b""
    while b"\r\n\r\n" not in response:
        response += await stream.receive()
    head, _, rest = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    client = Client(stream)
    client.buffer.extend(rest)
    return server, client


async def exchange(*chunks: bytes, expect: int) -> tuple[EchoApp, Client]:
    app = EchoApp()
    server, client = await connect(app)
    try:
        await client.send(*chunks)
        await app.wait(expect)
    finally:
        await server.__aexit__(None, None, None)
    return app, client


@pytest.fixture
def parsed_by_websockets(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The opcodes of the data frames websockets' own parser delivered."""
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    seen: list[int] = []
    for name in ("handle_text", "handle_bytes", "handle_cont"):
        original = getattr(WebSocketsSansIOProtocol, name)

        def counted(self: Any, event: Any, original: Any = original) -> None:
            seen.append(int(event.opcode))
            original(self, event)

        monkeypatch.setattr(WebSocketsSansIOProtocol, name, counted)
    return seen


async def test_several_whole_frames_in_one_read_arrive_in_order(
    parsed_by_websockets: list[int],
) -> None:
    data = b"".join(frame(0x1, f'{{"n": {i}}}'.encode()) for i in range(5))
    app, _ = await exchange(data + frame(0x2, b"\x00\xff"), expect=6)
    assert app.messages == [("text", f'{{"n": {i}}}') for i in range(5)] + [("bytes", b"\x00\xff")]
    assert parsed_by_websockets == []  # all read directly


async def test_a_frame_cut_across_reads_and_the_frames_after_it(
    parsed_by_websockets: list[int],
) -> None:
    long_text = "x" * 300  # a 16-bit length
    cut = frame(0x1, long_text.encode())
    after = frame(0x1, b"after") + frame(0x1, b"and more") + frame(0x1, b"last")
    app, _ = await exchange(
        cut[:7], cut[7:] + after[:3], after[3:], frame(0x1, b"direct"), expect=5
    )
    assert app.messages == [
        ("text", long_text),
        ("text", "after"),
        ("text", "and more"),
        ("text", "last"),
        ("text", "direct"),
    ]
    assert parsed_by_websockets == []  # a frame's start waits here for its end


@pytest.mark.parametrize("at", [1, 2, 3, 4, 6, 8, 9, 20])
async def test_a_frame_cut_anywhere_is_one_message_and_its_payload_never_a_frame(
    at: int,
) -> None:
    """The payload of this frame is itself a valid frame: a reader that lost its place
    (taking the middle of a frame for the start of one) would deliver "SMUGGLED"."""
    inner = frame(0x2, b"SMUGGLED") + b"z" * 300
    whole = frame(0x2, inner)  # a 16-bit length: header 4 bytes, mask 4
    app, _ = await exchange(whole[:at], whole[at:], frame(0x1, b"next"), expect=2)
    assert app.messages == [("bytes", inner), ("text", "next")]


async def test_a_media_message_whose_header_and_payload_come_in_separate_reads() -> None:
    media = json.dumps({"event": "media", "media": {"payload": "/" * 300}}).encode()
    whole = frame(0x1, media)
    app, _ = await exchange(whole[:8], whole[8:], *(frame(0x1, b"n") for _ in range(5)), expect=6)
    assert app.messages == [("text", media.decode())] + [("text", "n")] * 5


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (bytes([0xC1, 0x85]), 1002),  # text with RSV1
        (bytes([0x88, 0x82]), None),  # a close frame: the server closes
        (bytes([0x89, 0x84]), None),  # a ping
        (bytes([0x01, 0x83]), None),  # the first fragment of a text message
    ],
    ids=["reserved bit", "close", "ping", "fragment"],
)
async def test_a_frame_header_alone_in_a_read_is_not_skipped(
    header: bytes, code: int | None
) -> None:
    """The rest of the frame (its mask and payload) follows in the next read; whatever
    websockets makes of that frame, data after it never arrives as if the frame were not
    there, and a frame websockets refuses still closes the connection."""
    app = EchoApp()
    server, client = await connect(app)
    try:
        size = header[1] & 0x7F
        await client.send(header, os.urandom(4 + size) + frame(0x1, b"after"))
        await anyio.sleep(0.1)
        if code is not None:
            assert await client.close_code() == code
            assert app.messages == []
    finally:
        await server.__aexit__(None, None, None)


async def test_a_ping_between_data_frames_is_answered_and_nothing_is_lost() -> None:
    app = EchoApp()
    server, client = await connect(app)
    try:
        await client.send(frame(0x1, b"one") + frame(0x9, b"hi") + frame(0x1, b"two"))
        await app.wait(2)
        opcode, payload = await read_frame(client.stream, client.buffer)
    finally:
        await server.__aexit__(None, None, None)
    assert (opcode, payload) == (0xA, b"hi")
    assert app.messages == [("text", "one"), ("text", "two")]


async def test_a_fragmented_message_is_reassembled(parsed_by_websockets: list[int]) -> None:
    data = frame(0x1, b"hel", fin=False) + frame(0x0, b"lo", fin=True) + frame(0x1, b"next")
    app, _ = await exchange(data, expect=2)
    assert app.messages == [("text", "hello"), ("text", "next")]
    assert parsed_by_websockets == [1, 0]  # the fragments; the next message directly


async def test_text_that_is_not_utf8_reaches_the_app_as_bytes() -> None:
    app, _ = await exchange(frame(0x1, b"\xff\xfe"), expect=1)
    assert app.messages == [("bytes", b"\xff\xfe")]


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (frame(0x1, b"unmasked", masked=False), 1002),
        (frame(0x1, b"x" * (MAX_BYTES + 1)), 1009),
        (bytes([0xC1, 0x80]) + os.urandom(4), 1002),  # a reserved bit set
    ],
    ids=["unmasked", "over the size limit", "reserved bit"],
)
async def test_a_frame_the_reader_does_not_take_gets_websockets_rules(
    bad: bytes, code: int
) -> None:
    app = EchoApp()
    server, client = await connect(app)
    try:
        await client.send(frame(0x1, b"before") + bad + frame(0x1, b"never"))
        await app.wait(2)
        assert await client.close_code() == code
    finally:
        await server.__aexit__(None, None, None)
    assert app.messages == [("text", "before")]  # nothing after the bad frame


async def test_frames_sent_before_the_handshake_is_answered_drop_the_connection() -> None:
    """A client must wait for the answer to its upgrade request (RFC 6455, 4.1). Bytes
    sent before it would be parsed by websockets a whole read at a time, past the
    per-frame budget below, so the connection is dropped instead."""
    app = EchoApp(accept_after_s=0.2)
    server = LoopbackServer(app, limits=ServerSettings(max_message_bytes=MAX_BYTES))
    await server.__aenter__()
    try:
        stream = await anyio.connect_tcp("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            "GET /media HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        await stream.send(request)
        await anyio.sleep(0.05)  # read and not yet answered
        await stream.send(frame(0x1, b"too soon"))
        received = b""
        with anyio.fail_after(5):
            try:
                while chunk := await stream.receive():
                    received += chunk
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                pass
    finally:
        await server.__aexit__(None, None, None)
    assert not received.startswith(b"HTTP/1.1 101") and app.messages == []


async def test_a_flood_of_empty_fragments_is_dropped() -> None:
    """Continuation frames of a message that never ends: no message reaches the app, so
    reading never pauses; a core was kept busy, and calls failed, with no token shown."""
    from voicekit.server.media_socket import CONTROL_FRAMES_PER_S

    app = EchoApp()
    server, client = await connect(app)
    try:
        await client.send(frame(0x1, b"before"))
        fragments = frame(0x1, b"", fin=False) + frame(0x0, b"", fin=False) * 10_000
        with contextlib.suppress(anyio.BrokenResourceError, OSError):
            await client.stream.send(fragments)
        assert await client.close_code() is None  # dropped
        await app.wait(2)
    finally:
        await server.__aexit__(None, None, None)
    assert app.messages == [("text", "before")] and app.disconnect_code is not None
    assert CONTROL_FRAMES_PER_S < 10_000


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (bytes([0x81, 0x64]), 1002),  # unmasked, 100 bytes announced
        (bytes([0x83, 0xE4]), 1002),  # opcode 3
    ],
    ids=["unmasked", "unknown opcode"],
)
async def test_a_header_websockets_refuses_closes_at_once(header: bytes, code: int) -> None:
    app = EchoApp()
    server, client = await connect(app)
    try:
        await client.send(frame(0x1, b"a") + header)  # the payload never comes
        assert await client.close_code() == code
    finally:
        await server.__aexit__(None, None, None)
    assert app.messages == [("text", "a")]


async def test_a_continuation_over_what_is_left_of_the_limit_is_refused_from_its_header() -> None:
    app = EchoApp()
    server, client = await connect(app)
    first = frame(0x2, b"x" * (MAX_BYTES - 100), fin=False)
    cont = frame(0x0, b"y" * 200)
    try:
        await client.send(first + cont[:8])  # header and mask only
        assert await client.close_code() == 1009
    finally:
        await server.__aexit__(None, None, None)
    assert app.messages == []


def random_frames(rng: random.Random) -> tuple[bytes, list[tuple[str, Any]], bool]:
    """A few frames a client might send, now and then one websockets must refuse; with
    the messages they carry up to that frame, and whether there is one."""
    parts: list[bytes] = []
    expected: list[tuple[str, Any]] = []
    for _ in range(rng.randint(2, 7)):
        kind = rng.random()
        if kind < 0.45:
            text = "é" * rng.randint(0, 160)
            parts.append(frame(0x1, text.encode()))
            expected.append(("text", text))
        elif kind < 0.6:
            data = rng.randbytes(rng.randint(0, 300))
            parts.append(frame(0x2, data))
            expected.append(("bytes", data))
        elif kind < 0.7:
            parts.append(frame(0x9, rng.randbytes(rng.randint(0, 10))))
        elif kind < 0.82:
            pieces = [rng.randbytes(rng.randint(0, 50)) for _ in range(rng.randint(2, 3))]
            parts.append(frame(0x2, pieces[0], fin=False))
            parts.extend(
                frame(0x0, piece, fin=i == len(pieces) - 2) for i, piece in enumerate(pieces[1:])
            )
            expected.append(("bytes", b"".join(pieces)))
        else:
            parts.append(
                rng.choice(
                    [
                        frame(0x1, b"unmasked", masked=False),
                        frame(0x1, b"x" * (MAX_BYTES + rng.randint(1, 100))),
                        bytes([0xC1, 0x80]) + rng.randbytes(4),  # a reserved bit
                        bytes([0x83, 0x80]) + rng.randbytes(4),  # opcode 3
                        frame(0x0, b"stray continuation"),
                    ]
                )
            )
            return b"".join(parts), expected, True
    return b"".join(parts), expected, False


async def outcome(
    data: bytes, cuts: list[int], refused: bool
) -> tuple[list[tuple[str, Any]], int | None]:
    """What the app received and the close code the client got, for ``data`` sent in
    pieces cut at ``cuts`` and then, unless the server is to refuse a frame, a normal
    close (written after the server closed, it would reset the connection before its
    close frame is read)."""
    app = EchoApp()
    server, client = await connect(app)
    try:
        bounds = [0, *cuts, len(data)]
        with contextlib.suppress(anyio.BrokenResourceError, OSError):
            for a, b in itertools.pairwise(bounds):
                await client.send(data[a:b])
            if not refused:
                await client.send(frame(0x8, struct.pack("!H", 1000)))
        code = await client.close_code()
    finally:
        await server.__aexit__(None, None, None)
    return app.messages, code


@pytest.mark.parametrize("seed", range(16))
async def test_the_reader_and_websockets_alone_agree_on_any_stream(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random frame sequences cut at random places: the same messages and the same close
    code whether the reader cuts the frames or websockets parses every byte."""
    from voicekit.server.media_socket import MediaWebSocketProtocol

    rng = random.Random(seed)
    data, expected, refused = random_frames(rng)
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 4))))
    fast = await outcome(data, cuts, refused)
    monkeypatch.setattr(MediaWebSocketProtocol, "_parser_idle", lambda self: False)
    stock = await outcome(data, cuts, refused)
    assert fast[1] == stock[1]
    if not refused:
        assert fast == stock == (expected, 1000)
    else:
        # A frame websockets refuses closes the connection (1002, or 1009 when too big;
        # None when the client's later pieces met the closed socket, whose reset drops
        # the close frame unread) and nothing after it arrives. websockets also drops the
        # good messages it read in the same piece of the stream; the reader has
        # delivered those already.
        assert fast[1] in (1002, 1009, None)
        assert fast[0] == expected
        assert stock[0] == expected[: len(stock[0])]


LENGTH_EDGES = [0, 125, 126, 127, 65535 % MAX_BYTES, MAX_BYTES]  # odd: text, even: binary


def _payload(n: int) -> bytes:
    return bytes([65 + n % 26]) * n


@pytest.mark.parametrize("cut", range(1, 9))
async def test_frames_at_each_length_encoding_edge_cut_inside_their_headers(
    cut: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Payloads at the 7-bit / 16-bit boundary and at the message limit, each frame cut
    ``cut`` bytes in (inside its length or its mask): the reader and websockets alone
    deliver the same messages, then the same 1009 for a frame one byte over the limit,
    refused from its header."""
    from voicekit.server.media_socket import MediaWebSocketProtocol

    frames = [frame(0x1 if n % 2 else 0x2, _payload(n)) for n in LENGTH_EDGES]
    frames.append(frame(0x2, b"x" * (MAX_BYTES + 1)))
    expected = [
        ("text", _payload(n).decode()) if n % 2 else ("bytes", _payload(n)) for n in LENGTH_EDGES
    ]
    data = b"".join(frames)
    starts = [0, *itertools.accumulate(len(f) for f in frames[:-1])]
    cuts = [start + cut for start in starts if start + cut < len(data)]
    fast = await outcome(data, cuts, True)
    monkeypatch.setattr(MediaWebSocketProtocol, "_parser_idle", lambda self: False)
    stock = await outcome(data, cuts, True)
    assert fast == (expected, 1009)
    assert stock[1] == 1009 and stock[0] == expected[: len(stock[0])]


async def test_a_client_that_pings_and_never_reads_is_dropped_not_buffered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every ping is answered with a pong: a client that never reads them made the
    server hold them all (1.5 GB in 40 s), and the close meant for it never went out."""
    from voicekit.server import media_socket

    monkeypatch.setattr(media_socket, "CONTROL_FRAMES_PER_S", 10**9)  # the backlog alone
    monkeypatch.setattr(media_socket, "WRITE_BACKLOG_BYTES", 64 * 1024)
    app = EchoApp()
    server, client = await connect(app)
    held: list[int] = []
    original = media_socket.MediaWebSocketProtocol.data_received

    def watched(self: Any, data: bytes) -> None:
        original(self, data)
        held.append(self.transport.get_write_buffer_size())

    monkeypatch.setattr(media_socket.MediaWebSocketProtocol, "data_received", watched)
    pings = frame(0x9, b"p" * 125) * 64
    try:
        with anyio.fail_after(10):
            try:
                while True:  # never reading: the client's own receive buffer fills too
                    await client.stream.send(pings)
            except (anyio.BrokenResourceError, OSError):
                pass  # dropped
        await app.wait(1)  # the app sees the end
    finally:
        await server.__aexit__(None, None, None)
    assert app.disconnect_code is not None
    assert max(held) < 64 * 1024 + len(pings) * 2  # the pongs of one read past the bound


async def test_a_flood_of_control_frames_is_dropped() -> None:
    from voicekit.server.media_socket import CONTROL_FRAMES_PER_S

    app = EchoApp()
    server, client = await connect(app)
    try:
        await client.send(frame(0x1, b"before"))
        await client.stream.send(frame(0xA, b"") * (CONTROL_FRAMES_PER_S + 1))
        assert await client.close_code() is None  # dropped, no close handshake to wait on
        await app.wait(2)
    finally:
        await server.__aexit__(None, None, None)
    assert app.messages == [("text", "before")] and app.disconnect_code is not None


async def test_pings_at_a_keepalive_pace_are_answered() -> None:
    app = EchoApp()
    server, client = await connect(app)
    try:
        for n in range(5):
            await client.send(frame(0x9, b"%d" % n))
            assert await read_frame(client.stream, client.buffer) == (0xA, b"%d" % n)
        await client.send(frame(0x1, b"still here"))
        await app.wait(1)
    finally:
        await server.__aexit__(None, None, None)
    assert app.messages == [("text", "still here")]


async def test_an_upgraded_connection_leaves_no_http_side_behind() -> None:
    """The HTTP protocol's request deadline was left armed after the upgrade, holding the
    connection's HTTP side for request_timeout_s: a flood of junk media connections grew
    a server by megabytes a second."""
    import gc

    from tests.session_helpers import until

    def http_sides() -> int:
        gc.collect()
        return sum(type(o).__name__ == "DeadlineHTTPProtocol" for o in gc.get_objects())

    app = EchoApp()
    server, client = await connect(app)
    try:
        await client.send(frame(0x8, struct.pack("!H", 1000)))
        await client.close_code()
        await app.wait(1)
        await client.stream.aclose()
        await until(lambda: http_sides() == 0)
    finally:
        await server.__aexit__(None, None, None)


async def test_a_shutdown_just_after_the_peer_closed_closes_quietly() -> None:
    """The peer's close is answered at once, but the connection leaves the server's list
    only a moment later: a shutdown in between sent a second close, and websockets raised
    InvalidState out of the server's shutdown (a flaky test teardown showed it)."""
    app = EchoApp()
    server, client = await connect(app)
    try:
        await client.send(frame(0x1, b"hello"))
        await app.wait(1)
        (protocol,) = [
            c
            for c in server._server.server_state.connections
            if isinstance(c, MediaWebSocketProtocol)
        ]
        protocol.data_received(frame(0x8, struct.pack("!H", 1000)))  # the close arrives
        protocol.shutdown()  # before connection_lost: no exception
        assert protocol.transport.is_closing()
        assert await client.close_code() == 1000  # the one close, answering the peer's
    finally:
        await server.__aexit__(None, None, None)
    assert app.disconnect_code == 1000
