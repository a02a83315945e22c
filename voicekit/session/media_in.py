"""The caller's side of a call's media stream, read in one loop.

Audio goes to the STT (converted where the STT cannot take the call's codec, and its
arrival noted, so an end of speech the STT reports as a position in the audio can be
mapped back to the moment it was heard); marks go to the reply pipeline that placed them;
key presses go to the keypad; the stream's end ends the call. This runs for every 20 ms
frame of every call, so it does nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from anyio.abc import TaskGroup

from voicekit.audio import AudioConverter
from voicekit.clock import loop_clock
from voicekit.errors import VoiceKitError
from voicekit.session.actions import Keypad
from voicekit.session.closing import CallEnding
from voicekit.session.inbound_clock import InboundClock
from voicekit.session.reply import ReplyPipeline
from voicekit.stt import STTStream
from voicekit.tasks import detached
from voicekit.telephony import Dtmf, InboundAudio, MarkReached, MediaStream, StreamStopped

__all__ = ["InboundMedia"]

logger = logging.getLogger(__name__)


class InboundMedia:
    """Reads ``media`` until it stops; run :meth:`run` in the call's task group."""

    def __init__(
        self,
        media: MediaStream,
        *,
        converter: AudioConverter,
        clock: InboundClock,
        keypad: Keypad,
        ending: CallEnding,
        pipeline: Callable[[], ReplyPipeline | None],
        task_group: Callable[[], TaskGroup | None],
        call_id: str,
    ) -> None:
        self.media = media
        self._converter = converter
        self._clock = clock
        self._keypad = keypad
        self._ending = ending
        self._pipeline = pipeline
        self._task_group = task_group
        self.call_id = call_id
        self._sending = False  # a frame is being awaited through stt_stream.send_audio

    def detach(self) -> None:
        """The call is over: drop the callbacks that point back at the session."""
        self._pipeline = self._task_group = detached

    async def run(self, stt_stream: STTStream) -> None:
        now = loop_clock()
        fmt = self.media.inbound_format
        offered = (
            self._converter.passthrough
            and type(stt_stream).send_audio_now is not STTStream.send_audio_now
            and self.media.offer_audio(self._taker(stt_stream, now))
        )
        try:
            async for event in self.media:
                if isinstance(event, InboundAudio):
                    self._clock.received(fmt.duration_ms(len(event.data)), now())
                    data = self._converter.process(event.data)
                    if data:
                        self._sending = True  # no frame is taken past this one meanwhile
                        try:
                            await stt_stream.send_audio(data)
                        except VoiceKitError as exc:
                            logger.warning("call=%s: STT send failed: %s", self.call_id, exc)
                        finally:
                            self._sending = False
                elif isinstance(event, MarkReached):
                    pipeline = self._pipeline()
                    if pipeline is not None:
                        pipeline.mark_reached(event.name)
                elif isinstance(event, Dtmf):
                    # Not the digit: keys are how callers enter PINs and card numbers.
                    logger.debug("call=%s: the caller pressed a key", self.call_id)
                    self._keypad.press(event.digit, self._task_group())
                elif isinstance(event, StreamStopped):
                    self._ending.end("media_error" if event.failed else "caller_hangup")
                    return
            self._ending.end("stream_closed")
        except Exception as exc:
            logger.error(
                "call=%s: media stream failed: %s: %s", self.call_id, type(exc).__name__, exc
            )
            self._ending.end("media_error")
        finally:
            if offered:
                self.media.offer_audio(None)

    def _taker(self, stt_stream: STTStream, now: Callable[[], float]) -> Callable[[bytes], bool]:
        """Frames straight from the socket's callback to the STT, when it can take them at
        once: no queue and no task switch for the 50 frames a second of every call. Only
        where the audio passes through unconverted: a resampler must not have consumed a
        frame that then goes the usual way."""
        received = self._clock.received
        bytes_per_s = self.media.inbound_format.bytes_per_second  # duration_ms, in line
        send_now = stt_stream.send_audio_now

        def take(data: bytes) -> bool:
            if self._sending:
                return False  # an earlier frame is still on its way through send_audio
            at = now()
            try:
                if not send_now(data):
                    return False
            except Exception as exc:
                # It may have written the frame: never send it again the other way. Stop
                # offering, so the rest of the call goes through send_audio.
                logger.warning(
                    "call=%s: STT send failed: %s: %s", self.call_id, type(exc).__name__, exc
                )
                self.media.offer_audio(None)
            received(len(data) * 1000.0 / bytes_per_s, at)
            return True

        return take
