"""Text-to-speech interface: one persistent session per call, one utterance per reply.

The session owns the provider connection for the whole call (no handshake per sentence);
an utterance is one reply's stream of text in and audio out. Text is pushed as the LLM
writes it, and audio comes back chunk by chunk while more text is still arriving.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import SecretStr

from voicekit._resource import AsyncResource
from voicekit.audio.convert import AudioConverter
from voicekit.audio.formats import AudioFormat
from voicekit.provider import Provider, ProviderKind, ProviderSettings, SettingsT

__all__ = ["TTS", "Alignment", "AudioChunk", "TTSSession", "Utterance", "speak"]


@dataclass(frozen=True, slots=True)
class Alignment:
    """Which characters a chunk of audio speaks, and when (ms from the chunk's start).

    This is what lets barge-in keep exactly the words the caller heard.
    """

    chars: tuple[str, ...]
    start_ms: tuple[int, ...]
    duration_ms: tuple[int, ...]
    # True when the times are spread over the characters, not measured by the engine.
    estimated: bool = False

    @property
    def text(self) -> str:
        return "".join(self.chars)


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Synthesised audio in the session's format, with its alignment when available."""

    data: bytes
    alignment: Alignment | None = None


class Utterance(ABC):
    """One reply: push text, then ``end``; iterate to receive audio.

    ``cancel`` stops generation at once: no audio of a cancelled utterance is yielded
    afterwards.
    """

    @abstractmethod
    async def push_text(self, text: str) -> None:
        """Append text to speak. May be any fragment; the provider buffers as needed."""

    @abstractmethod
    async def flush(self) -> None:
        """Generate audio for all text pushed so far without waiting for more."""

    @abstractmethod
    async def end(self) -> None:
        """No more text: finish generating, then end the audio iteration."""

    @abstractmethod
    async def cancel(self) -> None:
        """Abandon the utterance (barge-in). Idempotent."""

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[AudioChunk]:
        """Audio in order; ends after ``end`` once all audio is delivered, or on cancel."""


class TTSSession(AsyncResource):
    """A call's persistent connection to the TTS provider."""

    @abstractmethod
    def utterance(self) -> Utterance:
        """Start a new utterance on this session."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the connection; open utterances are cancelled."""


class TTS(Provider[SettingsT], ABC):
    """A text-to-speech provider."""

    kind: ClassVar[ProviderKind] = "tts"

    @property
    @abstractmethod
    def output_formats(self) -> tuple[AudioFormat, ...]:
        """Formats the provider produces natively, preferred first."""

    @abstractmethod
    def session(self, fmt: AudioFormat, *, call_id: str | None = None) -> TTSSession:
        """Open the call's session producing audio in ``fmt`` (one of ``output_formats``)."""

    def voice_identity(self) -> dict[str, Any]:
        """What decides how this provider sounds, as JSON-ready data: the phrase cache
        keys stored audio on it, so any change here is a cache miss.

        The default is every setting except credentials and the request options every
        provider has (timeout, retries): safe, if sometimes stricter than needed.
        Providers whose settings hold connection options (URLs, keepalives) override it
        to name only what changes the audio."""
        base = set(ProviderSettings.model_fields)
        names = [
            name
            for name in type(self.settings).model_fields
            if name not in base and not isinstance(getattr(self.settings, name), SecretStr)
        ]
        return self.settings.model_dump(mode="json", include=set(names))


async def speak(tts: TTS[Any], text: str, fmt: AudioFormat) -> bytes:
    """``text`` spoken by ``tts`` in its preferred format, converted to ``fmt``: for a
    file, a simulated caller's line, a test; calls use the streaming interface."""
    native = tts.output_formats[0]
    audio = bytearray()
    async with tts.session(native, call_id="speak") as session:
        utterance = session.utterance()
        await utterance.push_text(text.strip() + " ")
        await utterance.end()
        async for chunk in utterance:
            audio += chunk.data
    converter = AudioConverter(native, fmt)
    return converter.process(bytes(audio)) + converter.flush()
