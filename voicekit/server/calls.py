"""The calls a server is running: the ``CallHost`` telephony routes talk to.

Every call runs in its own connection handler with its own ``CallSession``; an exception
in one call is caught and logged there and never reaches another. A call counts against
``max_calls`` from the moment it is answered or dialled (:class:`LiveCalls`), and its
media token admits one connection while it is live. On shutdown the manager stops
accepting calls, lets active ones finish for a grace period, then ends them politely;
every call's record is written either way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from voicekit.config.resolve import PUBLIC_URL_MISSING
from voicekit.config.settings import VoiceKitSettings
from voicekit.errors import ConfigError
from voicekit.files import write_whole
from voicekit.llm import LLM
from voicekit.lograte import FoldedWarning
from voicekit.phrases import phrase_cache
from voicekit.plugins.observers import Observers
from voicekit.records import CallRecord
from voicekit.server.live import LiveCalls
from voicekit.server.runtime import collector
from voicekit.server.tokens import MediaTokens
from voicekit.session import CallSession
from voicekit.session.responder import ResponderFactory
from voicekit.stt import STT
from voicekit.telephony import MediaStream
from voicekit.tools import FunctionTool, unique_tools
from voicekit.tts import TTS

__all__ = ["CallManager"]

logger = logging.getLogger(__name__)


class CallManager:
    def __init__(
        self,
        settings: VoiceKitSettings,
        *,
        stt: STT,
        llm: LLM | None,
        tts: TTS,
        hooks: Observers | None = None,
        tools: Sequence[FunctionTool] = (),
        responder: ResponderFactory | None = None,
    ) -> None:
        self.settings = settings
        self.responder = responder
        self._bad_tokens = FoldedWarning(logger)  # junk media connections cannot flood the log
        self.phrases = phrase_cache(settings)
        self.stt, self.llm, self.tts = stt, llm, tts
        self.hooks = hooks
        self.tools = unique_tools(tools)
        server = settings.server
        secret = (
            server.media_auth_secret.get_secret_value().encode()
            if (server.media_auth_secret)
            else None
        )
        self.tokens = MediaTokens(secret, ttl_s=server.media_token_ttl_s)
        self._public_url = server.public_url
        self.live = LiveCalls(server.max_calls, pending_ttl_s=server.media_token_ttl_s)
        self.active: dict[str, CallSession] = {}
        self.records: list[CallRecord] = []
        self.calls_total = 0
        self.draining = False
        self._idle = anyio.Event()
        self._idle.set()
        self._machines: set[str] = set()  # AMD results that arrived before the media
        self._writing = 0  # ended calls whose record is still being written

    # -- CallHost ---------------------------------------------------------------------------

    @property
    def public_url(self) -> str:
        if self._public_url is None:
            raise ConfigError(PUBLIC_URL_MISSING)
        return self._public_url

    @property
    def max_message_bytes(self) -> int:
        return self.settings.server.max_message_bytes

    def reserve_call(self, key: str) -> bool:
        if self.draining:
            return False
        accepted = self.live.reserve(key)
        if accepted:
            self._busy()
        return accepted

    def call_identified(self, key: str, call_id: str) -> None:
        self.live.identify(key, call_id)

    def issue_media_token(self, key: str) -> str:
        return self.tokens.issue(key)

    def admit_media(self, token: str | None) -> str | None:
        key = self.tokens.check(token)
        if key is None:
            self._bad_tokens.warning("refused a media stream: invalid or expired token")
        else:
            admission = self.live.admit(key)
            if admission.admitted:
                return admission.call_id
            logger.warning(
                "call=%s: refused a media stream: %s", admission.call_id, admission.refusal
            )
        collector.connection_refused()
        return None

    async def run_call(
        self,
        media: MediaStream,
        *,
        hangup: Callable[[], Awaitable[None]],
        transfer: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        call_id = media.call.call_id
        if call_id not in self.active and self.live.ended(call_id):
            # Admitted, then ended (a hang-up webhook) before its start frame came.
            logger.info("call=%s: ended before its media stream started", call_id)
            return
        if call_id in self.active or not self.live.connected(call_id):
            # Only admit_media lets a call in; a provider that skipped it gets nothing.
            logger.error("call=%s: refused to run a call that was not admitted", call_id)
            return
        try:
            session = CallSession(
                media,
                stt=self.stt,
                llm=self.llm,
                tts=self.tts,
                agent=self.settings.agent,
                turn=self.settings.turn,
                hooks=self.hooks,
                hangup=hangup,
                transfer=transfer,
                tools=self.tools,
                responder=self.responder,
                phrases=self.phrases,
            )
        except Exception:  # a bug, or settings create_app did not see: never silent
            logger.exception("call=%s: the session could not start", call_id)
            self.live.end(call_id)
            self._maybe_idle()
            with contextlib.suppress(Exception):
                await hangup()
            return
        self.active[call_id] = session
        self.calls_total += 1
        record: CallRecord | None = None
        try:
            if call_id in self._machines:
                self._machines.discard(call_id)
                session.machine_answered()  # applied as soon as the session starts
            record = await session.run()
        except Exception:  # a bug in one call must not reach the others
            logger.exception("call=%s: the session failed", call_id)
            record = session.record
            record.end_reason = "error"
        finally:
            self.active.pop(call_id, None)
            self.live.end(call_id)
            if record is None:
                record = session.record
                record.end_reason = (
                    record.end_reason if record.end_reason != "unknown" else ("cancelled")
                )
            self.records.append(record)
            del self.records[:-1000]
            self._writing += 1  # not idle (a drain waits) until the record is on disk
            try:
                with anyio.CancelScope(shield=True):  # a record is written even at shutdown
                    await self._write(record)
            finally:
                self._writing -= 1
            self._maybe_idle()
            collector.call_ended(len(self.live))

    def end_call(self, call_id: str, reason: str) -> None:
        session = self.active.get(call_id)
        if session is not None:
            session.caller_hung_up(reason)
        elif self.live.end(call_id):  # ended before its media connected
            logger.info("call=%s: ended before its media stream connected (%s)", call_id, reason)
            self._maybe_idle()

    def _busy(self) -> None:
        if self._idle.is_set():  # idle -> busy; drain() may already wait on the event
            self._idle = anyio.Event()

    def _maybe_idle(self) -> None:
        if not self.active and not len(self.live) and not self._writing:
            self._idle.set()

    def machine_detected(self, call_id: str) -> None:
        session = self.active.get(call_id)
        if session is None:
            self._machines.add(call_id)
        else:
            session.machine_answered()

    # -- records, health, shutdown --------------------------------------------------------------

    async def _write(self, record: CallRecord) -> None:
        """Write the record in a worker thread: serialising and writing a file would stall
        every other call's audio on the event loop."""
        if self.settings.server.records_dir is not None:
            await anyio.to_thread.run_sync(self._write_file, record)

    def _write_file(self, record: CallRecord) -> None:
        directory = self.settings.server.records_dir
        assert directory is not None
        try:
            path = Path(directory) / f"{record.call.call_id.replace('/', '_')}.json"
            text = json.dumps(dataclasses.asdict(record), indent=2, default=str)
            Path(directory).mkdir(parents=True, exist_ok=True)
            write_whole(path, text.encode())
        except OSError as exc:
            logger.error("call=%s: could not write the call record: %s", record.call.call_id, exc)
        except Exception:  # a value the record cannot hold must not skip the call's hang-up
            logger.exception("call=%s: could not serialise the call record", record.call.call_id)

    def health(self) -> dict[str, Any]:
        return {
            "status": "draining" if self.draining else "ok",
            "active_calls": len(self.live),  # answered or dialled, not yet ended
            "calls_total": self.calls_total,
        }

    async def drain(self, grace_s: float) -> None:
        """Refuse new calls, let active ones finish for ``grace_s``, then end them politely.

        A second call (the app's lifespan after ``voicekit serve`` drained on SIGTERM)
        only waits for the first to finish."""
        if self.draining:
            with anyio.move_on_after(grace_s + 20):
                await self._idle.wait()
            return
        self.draining = True
        logger.info("shutting down: %d active calls, %.0f s grace", len(self.active), grace_s)
        with anyio.move_on_after(grace_s):
            await self._idle.wait()
        for call_id in self.live.pending():  # answered, but their media never came
            self.live.end(call_id)
        self._maybe_idle()
        for session in list(self.active.values()):
            session.shut_down()
        with anyio.move_on_after(15):
            await self._idle.wait()
        for session in list(self.active.values()):
            session.caller_hung_up("shutdown")
        with anyio.move_on_after(5):
            await self._idle.wait()
