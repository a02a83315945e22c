"""Telephony interface: call control, webhooks, and the per-call media stream.

A telephony provider is both a client (answer, hang up, dial, transfer, record) and a
server (its webhook and media-WebSocket routes are mounted in the voicekit app). The
media stream is the call's audio in both directions plus marks, which is how voicekit
learns what the caller has actually heard.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from voicekit.audio.formats import AudioFormat
from voicekit.provider import Provider, ProviderKind, SettingsT

__all__ = [
    "TEXT_HANDLER_EXTENSION",
    "TEXT_WRITER_EXTENSION",
    "CallHost",
    "CallInfo",
    "Dtmf",
    "InboundAudio",
    "MarkReached",
    "MediaEvent",
    "MediaStream",
    "StreamStopped",
    "Telephony",
]

# The ASGI scope extension through which voicekit's server lets a media route set a
# synchronous handler for the socket's text messages (see MediaStream.offer_audio).
TEXT_HANDLER_EXTENSION = "voicekit.text_handler"
# ... and a function that writes a text message at once, from any coroutine or callback on
# the event loop's thread, returning False (nothing written) when the message must go
# through the ASGI ``send`` instead (the socket closing, or its write buffer full).
TEXT_WRITER_EXTENSION = "voicekit.text_writer"


@dataclass(frozen=True, slots=True)
class CallInfo:
    """Who is calling whom, and the provider's identifiers for the call."""

    call_id: str
    from_number: str | None = None
    to_number: str | None = None
    direction: Literal["inbound", "outbound"] = "inbound"
    provider_data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InboundAudio:
    """Caller audio in the stream's inbound format."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A key the caller pressed."""

    digit: str


@dataclass(frozen=True, slots=True)
class MarkReached:
    """Playback reached a mark sent with :meth:`MediaStream.mark`."""

    name: str


@dataclass(frozen=True, slots=True)
class StreamStopped:
    """The media stream ended: the caller hung up or the provider stopped streaming
    (``failed=False``), or the stream broke (``failed=True``: a protocol error, a message
    over the size limit), which ends the call as ``media_error``."""

    reason: str = "stopped"
    failed: bool = False


MediaEvent = InboundAudio | Dtmf | MarkReached | StreamStopped


class MediaStream(ABC):
    """One call's bidirectional audio."""

    @property
    @abstractmethod
    def call(self) -> CallInfo: ...

    @property
    @abstractmethod
    def inbound_format(self) -> AudioFormat: ...

    @property
    @abstractmethod
    def outbound_format(self) -> AudioFormat: ...

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[MediaEvent]:
        """Inbound events; ends after :class:`StreamStopped` or when the socket closes."""

    def offer_audio(self, take: Callable[[bytes], bool] | None) -> bool:
        """Offer each inbound audio frame to ``take`` as it arrives, before it is queued
        for :meth:`__aiter__`; ``None`` stops. Returns whether this stream can.

        Call ``take`` on the event loop's thread (the socket's own callback), never from
        another thread; it returns whether it took the frame. A frame it does not take,
        and every frame after it until the iterator has yielded everything queued, is
        iterated as usual, so the order is kept. ``offer_audio(None)`` may come more
        than once, and from inside ``take``. The default cannot.
        """
        return False

    @abstractmethod
    async def send_audio(self, data: bytes) -> None:
        """Queue audio (in ``outbound_format``) for playback to the caller.

        ``data`` is whole 20 ms frames, up to ``[turn] playout_message_ms`` of them (60 ms
        by default) from the session's playout; a transport that must send fixed-size
        packets cuts them itself, or the deployment sets ``playout_message_ms = 20``.
        """

    @abstractmethod
    async def mark(self, name: str) -> None:
        """Ask to be told (``MarkReached``) when audio sent so far has played."""

    @abstractmethod
    async def clear(self) -> None:
        """Drop all queued audio at the far end (barge-in)."""


class CallHost(Protocol):
    """What the voicekit server offers a telephony provider's routes.

    The provider owns its wire protocol (webhooks, media frames, REST); the host owns the
    calls: it counts them, signs media URLs, admits each call's one media connection,
    runs the agent on it, and ends calls. A call's life as the provider drives it:

    1. ``reserve_call(key)`` when the provider commits to a call (answers it, or is about
       to dial): from here it counts against ``max_calls``; False means refuse it as busy.
       ``key`` is the call id, or for a dial an id of the provider's own, later matched to
       the call id with ``call_identified``;
    2. ``issue_media_token(key)`` for the media URL;
    3. ``admit_media(token)`` when the media socket connects: the call id, once per live
       call; None means close the socket (1008) without reading audio;
    4. ``run_call(media, hangup=..., transfer=...)`` until the call ends;
    5. ``end_call(call_id, reason)`` whenever the provider learns the call is over.
    """

    @property
    def public_url(self) -> str:
        """Base URL (https://...) at which the provider's service reaches this server.

        Always from configuration, never from a request's headers."""

    @property
    def max_message_bytes(self) -> int:
        """The largest media message to accept; larger ones are skipped."""

    def reserve_call(self, key: str) -> bool:
        """Count a call from now on; False while draining or at ``max_calls``."""

    def call_identified(self, key: str, call_id: str) -> None:
        """The provider's call id of a call reserved under another key (a dial)."""

    def issue_media_token(self, key: str) -> str:
        """A signed, expiring token for the media stream of the call reserved as ``key``."""

    def admit_media(self, token: str | None) -> str | None:
        """The call id if ``token`` is valid and its call is live with no media yet
        connected; None otherwise (the host logs why, naming the call, never the token)."""

    async def run_call(
        self,
        media: MediaStream,
        *,
        hangup: Callable[[], Awaitable[None]],
        transfer: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        """Run the agent on ``media`` until the call ends; never raises. ``hangup`` ends
        the call; ``transfer(to)`` hands it to another number or SIP URI (None: this
        provider cannot, and the model is not offered the ``transfer_call`` tool)."""

    def end_call(self, call_id: str, reason: str) -> None:
        """The provider learnt the call is over (a hang-up webhook, a failed answer)."""

    def machine_detected(self, call_id: str) -> None:
        """Answering-machine detection says a machine answered: apply the voicemail policy."""


class Telephony(Provider[SettingsT], ABC):
    """A telephony provider: call control plus webhook and media routes."""

    kind: ClassVar[ProviderKind] = "telephony"
    # Whether the provider builds URLs to this server (webhooks, media streams) and so
    # needs ``[server] public_url``; the server refuses to start without it.
    needs_public_url: ClassVar[bool] = True

    @classmethod
    def stream_formats(cls, options: Mapping[str, Any]) -> tuple[AudioFormat, ...]:
        """The audio formats calls will use under ``options`` (the provider's
        ``[providers.<name>]`` table as written), for work done before any call, such as
        ``voicekit flow warm``; empty when only a call's start can tell."""
        return ()

    @abstractmethod
    def routes(self, host: CallHost) -> Sequence[Any]:
        """ASGI routes (Starlette ``Route``/``WebSocketRoute``), mounted under
        ``/telephony/<name>``."""

    @abstractmethod
    async def hangup(self, call_id: str) -> None:
        """End the call. A call that already ended counts as done."""

    @abstractmethod
    async def dial(self, to: str, *, from_number: str | None = None, **options: Any) -> str:
        """Place an outbound call; returns the call id."""

    def check_dial(self, from_number: str | None = None) -> None:
        """Raise :class:`~voicekit.errors.ConfigError` if settings needed to dial are
        missing; ``voicekit dial`` asks before it starts the server."""

    @abstractmethod
    async def transfer(self, call_id: str, to: str) -> None:
        """Transfer the call to another number or SIP URI."""
