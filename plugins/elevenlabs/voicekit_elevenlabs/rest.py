"""The ``elevenlabs-rest`` TTS provider: ``POST /v1/text-to-speech/{voice}/stream``.

For accounts or networks where WebSockets are unavailable. Each flushed piece of text is
one streaming request; pieces are requested in order and their audio is forwarded as it
streams in, so the first audio still arrives before the whole reply is written. There is
no alignment on this endpoint, so barge-in truncation falls back to the played duration.
"""

from __future__ import annotations

import contextlib
import logging
import math
import weakref
from collections.abc import AsyncIterator
from typing import ClassVar

import anyio
import httpx
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from voicekit.audio import AudioFormat
from voicekit.errors import ProviderError
from voicekit.provider import ProviderSettings
from voicekit.provider_errors import network_error, retry_after_s, status_error
from voicekit.tls import HTTP1_ALPN, client_tls
from voicekit.tts import TTS, AudioChunk, TTSSession, Utterance
from voicekit_elevenlabs.formats import OUTPUT_FORMATS, output_format_name
from voicekit_elevenlabs.settings import ElevenLabsSettings

__all__ = ["ElevenLabsRestTTS"]

logger = logging.getLogger(__name__)
PROVIDER = "elevenlabs-rest"


def _error(response: httpx.Response, body: bytes) -> ProviderError:
    return status_error(
        response.status_code,
        f"ElevenLabs REST error HTTP {response.status_code}",
        provider=PROVIDER,
        key_env="ELEVENLABS_API_KEY",
        retry_after=retry_after_s(response.headers),
        detail=body.decode("utf-8", "replace"),
    )


class _RestUtterance(Utterance):
    def __init__(self, session: _RestSession) -> None:
        self.session = session
        self._pending = ""
        self._previous = ""
        self._ended = False
        self.cancelled = False
        text_send, text_recv = anyio.create_memory_object_stream[str](math.inf)
        self._text_send: MemoryObjectSendStream[str] = text_send
        self._text_recv: MemoryObjectReceiveStream[str] = text_recv

    async def push_text(self, text: str) -> None:
        if not (self._ended or self.cancelled):
            self._pending += text

    async def flush(self) -> None:
        if self._pending.strip() and not self.cancelled:
            self._text_send.send_nowait(self._pending)
        self._pending = ""

    async def end(self) -> None:
        if not self._ended:
            await self.flush()
            self._ended = True
            self._text_send.close()

    async def cancel(self) -> None:
        self.cancelled = True
        self._text_send.close()

    async def __aiter__(self) -> AsyncIterator[AudioChunk]:
        async for text in self._text_recv:
            if self.cancelled:
                return
            async for data in self.session.synthesize(text, self._previous):
                if self.cancelled:
                    return
                yield AudioChunk(data)
            self._previous = (self._previous + text)[-500:]


class _RestSession(TTSSession):
    def __init__(self, tts: ElevenLabsRestTTS, fmt: AudioFormat) -> None:
        self.tts = tts
        self.format = fmt
        self._output_format = output_format_name(fmt)
        self._open: weakref.WeakSet[_RestUtterance] = weakref.WeakSet()

    def utterance(self) -> _RestUtterance:
        utterance = _RestUtterance(self)
        self._open.add(utterance)
        return utterance

    async def synthesize(self, text: str, previous: str) -> AsyncIterator[bytes]:
        s = self.tts.settings
        body = {
            "text": text,
            "model_id": s.model_id,
            "voice_settings": s.voice_settings.model_dump(),
            "apply_text_normalization": s.apply_text_normalization,
        }
        if previous:
            body["previous_text"] = previous
        if s.language_code:
            body["language_code"] = s.language_code
        url = f"{s.rest_url.rstrip('/')}/v1/text-to-speech/{s.voice_id}/stream"
        block = self.format.block_size
        carry = b""
        async with contextlib.AsyncExitStack() as stack:

            async def open_response() -> httpx.Response:
                """The streaming response, status checked: retried as the provider's
                policy says, since no audio of this piece has been yielded yet."""
                try:
                    request = self.tts.client.stream(
                        "POST",
                        url,
                        params={"output_format": self._output_format},
                        json=body,
                        headers={"xi-api-key": s.api_key.get_secret_value()},
                    )
                    response = await stack.enter_async_context(request)
                except httpx.HTTPError as exc:
                    raise network_error(exc, provider=PROVIDER, label="ElevenLabs") from None
                if response.status_code != 200:
                    raise _error(response, await response.aread())
                return response

            response: httpx.Response = await self.tts.retry_policy.call(open_response)
            try:
                async for data in response.aiter_bytes():
                    data = carry + data
                    cut = len(data) - len(data) % block
                    carry = data[cut:]
                    if cut:
                        yield data[:cut]
            except httpx.HTTPError as exc:  # mid-stream: audio went out, so no retry
                raise network_error(exc, provider=PROVIDER, label="ElevenLabs") from None

    async def aclose(self) -> None:
        """Open utterances are cancelled: their iteration ends instead of waiting."""
        for utterance in list(self._open):
            await utterance.cancel()


class ElevenLabsRestTTS(TTS[ElevenLabsSettings]):
    """ElevenLabs over plain HTTPS streaming; one pooled client per provider."""

    name: ClassVar[str] = "elevenlabs-rest"
    Settings: ClassVar[type[ProviderSettings]] = ElevenLabsSettings

    def __init__(self, settings: ElevenLabsSettings | None = None) -> None:
        super().__init__(settings)
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.settings.timeout), verify=client_tls(HTTP1_ALPN)
            )
        return self._client

    @property
    def output_formats(self) -> tuple[AudioFormat, ...]:
        return tuple(OUTPUT_FORMATS)

    def session(self, fmt: AudioFormat, *, call_id: str | None = None) -> _RestSession:
        return _RestSession(self, fmt)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
