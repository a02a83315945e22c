"""``voicekit.create_app(settings)``: the ASGI app (Starlette; mountable in FastAPI).

Routes: ``GET /healthz``, and each telephony provider's routes under
``/telephony/<name>/`` (for Telnyx: ``POST /telephony/telnyx/webhook`` and
``WS /telephony/telnyx/media``). Providers are created once, shared by every call (each
call opens its own STT stream and TTS session on them), and closed at shutdown.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from voicekit.config.resolve import resolve_providers
from voicekit.config.settings import VoiceKitSettings
from voicekit.llm import LLM
from voicekit.plugins import PluginManager, load_plugins
from voicekit.provider import ProviderKind
from voicekit.server.calls import CallManager
from voicekit.stt import STT
from voicekit.telephony import Telephony
from voicekit.tts import TTS

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def create_app(
    settings: VoiceKitSettings,
    *,
    plugins: PluginManager | None = None,
    stt: STT | None = None,
    llm: LLM | None = None,
    tts: TTS | None = None,
    telephony: Telephony | None = None,
) -> Any:
    """Build the server app. Providers not passed in are created from ``settings``."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    manager = plugins or load_plugins()
    registry = manager.registry
    given: dict[ProviderKind, Any] = {"stt": stt, "llm": llm, "tts": tts, "telephony": telephony}
    missing = tuple(kind for kind, provider in given.items() if provider is None)
    resolved = resolve_providers(settings, registry, kinds=missing)  # all errors at once

    def build(kind: ProviderKind, given: Any) -> Any:
        if given is not None:
            return given
        return registry.instantiate(kind, resolved.names[kind], resolved.settings[kind])

    stt_p, llm_p = build("stt", stt), build("llm", llm)
    tts_p, tel_p = build("tts", tts), build("telephony", telephony)
    calls = CallManager(settings, stt=stt_p, llm=llm_p, tts=tts_p, hooks=manager.hook)

    async def healthz(request: Any) -> Any:
        return JSONResponse(calls.health())

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        logger.info(
            "voicekit server ready: stt=%s llm=%s tts=%s telephony=%s",
            stt_p.name,
            llm_p.name,
            tts_p.name,
            tel_p.name,
        )
        try:
            yield
        finally:
            await calls.drain(settings.server.shutdown_grace_s)
            for provider in (stt_p, llm_p, tts_p, tel_p):
                try:
                    await provider.aclose()
                except Exception as exc:
                    logger.warning("closing %s failed: %s", provider.name, exc)

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Mount(f"/telephony/{tel_p.name}", routes=list(tel_p.routes(calls))),
        ],
        lifespan=lifespan,
    )
    app.state.calls = calls
    app.state.telephony = tel_p
    return _LearnPublicUrl(app, calls)


class _LearnPublicUrl:
    """Without ``[server] public_url``, take the URL from the first request's Host header."""

    def __init__(self, app: Any, calls: CallManager) -> None:
        self.app = app
        self.state = app.state
        self._calls = calls

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._calls.fallback_url is None and scope["type"] in ("http", "websocket"):
            headers = dict(scope.get("headers") or [])
            host = headers.get(b"host", b"").decode("latin-1")
            if host:
                secure = scope.get("scheme") in ("https", "wss")
                self._calls.fallback_url = f"{'https' if secure else 'http'}://{host}"
        await self.app(scope, receive, send)
