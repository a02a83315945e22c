"""The calls a server is running: the ``CallHost`` telephony routes talk to.

Every call runs in its own connection handler with its own ``CallSession``; an exception
in one call is caught and logged there and never reaches another. On shutdown the
manager stops accepting calls, lets active ones finish for a grace period, then ends
them politely; every call's record is written either way.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from voicekit.config.settings import VoiceKitSettings
from voicekit.llm import LLM
from voicekit.records import CallRecord
from voicekit.server.tokens import MediaTokens
from voicekit.session import CallSession
from voicekit.stt import STT
from voicekit.telephony import MediaStream
from voicekit.tts import TTS

__all__ = ["CallManager"]

logger = logging.getLogger(__name__)


class CallManager:
    def __init__(
        self,
        settings: VoiceKitSettings,
        *,
        stt: STT,
        llm: LLM,
        tts: TTS,
        hooks: Any | None = None,
    ) -> None:
        self.settings = settings
        self.stt, self.llm, self.tts = stt, llm, tts
        self.hooks = hooks
        server = settings.server
        secret = (
            server.media_auth_secret.get_secret_value().encode()
            if (server.media_auth_secret)
            else None
        )
        self.tokens = MediaTokens(secret, ttl_s=server.media_token_ttl_s)
        self._public_url = server.public_url
        self.fallback_url: str | None = None  # learnt from the first request if unset
        self.active: dict[str, CallSession] = {}
        self.records: list[CallRecord] = []
        self.calls_total = 0
        self.draining = False
        self._idle = anyio.Event()
        self._idle.set()
        self._machines: set[str] = set()  # AMD results that arrived before the media

    # -- CallHost ---------------------------------------------------------------------------

    @property
    def public_url(self) -> str:
        url = self._public_url or self.fallback_url
        if url is None:
            raise RuntimeError("set [server] public_url: the URL Telnyx reaches this server at")
        return url

    def accepting_calls(self) -> bool:
        return not self.draining and len(self.active) < self.settings.server.max_calls

    def issue_media_token(self, call_id: str) -> str:
        return self.tokens.issue(call_id)

    def check_media_token(self, token: str | None) -> str | None:
        return self.tokens.check(token)

    async def run_call(self, media: MediaStream, *, hangup: Callable[[], Awaitable[None]]) -> None:
        call_id = media.call.call_id
        session = CallSession(
            media,
            stt=self.stt,
            llm=self.llm,
            tts=self.tts,
            agent=self.settings.agent,
            turn=self.settings.turn,
            hooks=self.hooks,
            hangup=hangup,
        )
        self.active[call_id] = session
        self.calls_total += 1
        if self._idle.is_set():  # idle -> busy; drain() may already wait on the event
            self._idle = anyio.Event()
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
            if record is None:
                record = session.record
                record.end_reason = (
                    record.end_reason if record.end_reason != "unknown" else ("cancelled")
                )
            self.records.append(record)
            del self.records[:-1000]
            self._write(record)
            if not self.active:
                self._idle.set()

    def end_call(self, call_id: str, reason: str) -> None:
        session = self.active.get(call_id)
        if session is not None:
            session.caller_hung_up(reason)

    def machine_detected(self, call_id: str) -> None:
        session = self.active.get(call_id)
        if session is None:
            self._machines.add(call_id)
        else:
            session.machine_answered()

    # -- records, health, shutdown --------------------------------------------------------------

    def _write(self, record: CallRecord) -> None:
        directory = self.settings.server.records_dir
        if directory is None:
            return
        try:
            Path(directory).mkdir(parents=True, exist_ok=True)
            path = Path(directory) / f"{record.call.call_id.replace('/', '_')}.json"
            path.write_text(json.dumps(dataclasses.asdict(record), indent=2, default=str))
        except OSError as exc:
            logger.error("call=%s: could not write the call record: %s", record.call.call_id, exc)

    def health(self) -> dict[str, Any]:
        return {
            "status": "draining" if self.draining else "ok",
            "active_calls": len(self.active),
            "calls_total": self.calls_total,
        }

    async def drain(self, grace_s: float) -> None:
        """Refuse new calls, let active ones finish for ``grace_s``, then end them politely."""
        self.draining = True
        logger.info("shutting down: %d active calls, %.0f s grace", len(self.active), grace_s)
        with anyio.move_on_after(grace_s):
            await self._idle.wait()
        for session in list(self.active.values()):
            session.shut_down()
        with anyio.move_on_after(15):
            await self._idle.wait()
        for session in list(self.active.values()):
            session.caller_hung_up("shutdown")
        with anyio.move_on_after(5):
            await self._idle.wait()
