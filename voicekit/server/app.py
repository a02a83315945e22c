"""``voicekit.create_app(settings)``: the ASGI app (Starlette; mountable in FastAPI).

Routes: ``GET /healthz``, and each telephony provider's routes under
``/telephony/<name>/`` (for Telnyx: ``POST /telephony/telnyx/webhook`` and
``WS /telephony/telnyx/media``). Providers are created once, shared by every call (each
call opens its own STT stream and TTS session on them), and closed at shutdown.

The app is built to face the internet (docs/server.md, "Security"): request bodies are
capped while reading, the public URL comes from configuration only, and every secret the
settings hold is registered with :mod:`voicekit.logsafe` so that no log line shows it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio.to_thread
from pydantic import BaseModel, SecretStr

from voicekit import logsafe
from voicekit.config.resolve import (
    ResolvedProviders,
    config_warnings,
    resolve_providers,
    server_problems,
)
from voicekit.config.settings import NO_LLM, VoiceKitSettings
from voicekit.errors import ConfigError
from voicekit.flows.builtin import with_builtin_flow
from voicekit.flows.runtime import FlowRuntime, answering_problems, flow_from_settings
from voicekit.llm import LLM
from voicekit.plugins import PluginManager, load_plugins
from voicekit.plugins.observers import Observers
from voicekit.provider import ProviderKind
from voicekit.server.calls import CallManager
from voicekit.server.limits import BodyLimit
from voicekit.server.media_path import MediaFastPath
from voicekit.stt import STT
from voicekit.telephony import Telephony
from voicekit.tools import FunctionTool, builtin_tools, unique_tools
from voicekit.tts import TTS

__all__ = ["create_app", "register_secrets"]

logger = logging.getLogger(__name__)


def create_app(
    settings: VoiceKitSettings,
    *,
    plugins: PluginManager | None = None,
    stt: STT | None = None,
    llm: LLM | None = None,
    tts: TTS | None = None,
    telephony: Telephony | None = None,
    tools: Sequence[FunctionTool] = (),
) -> Any:
    """Build the server app. Providers not passed in are created from ``settings``.

    Serve it on its own (``voicekit serve`` does), or mount it in a larger app under a
    prefix, with ``[server] public_url`` ending in that prefix and the parent running its
    lifespan::

        voice = voicekit.create_app(settings)  # public_url = "https://example.com/voice"
        app = FastAPI(lifespan=voice.lifespan)
        app.mount("/voice", voice)

    ``tools`` are offered to the model in every call, with those plugins register
    (``register_tools``) and the built-ins ``[agent] builtin_tools`` names (docs/tools.md).

    Raises :class:`~voicekit.errors.ConfigError` when the settings cannot serve calls
    (a provider's options, no ``[server] public_url`` for a telephony provider that
    needs one, or two tools with one name)."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    settings = with_builtin_flow(settings)
    manager = plugins or load_plugins()
    registry = manager.registry
    given: dict[ProviderKind, Any] = {"stt": stt, "llm": llm, "tts": tts, "telephony": telephony}
    missing = tuple(kind for kind, provider in given.items() if provider is None)
    resolved = resolve_providers(settings, registry, kinds=missing)  # all errors at once

    def build(kind: ProviderKind, given: Any) -> Any:
        if given is not None:
            return given
        return registry.instantiate(kind, resolved.names[kind], resolved.settings[kind])

    no_llm = llm is None and settings.llm.provider == NO_LLM
    stt_p, llm_p = build("stt", stt), None if no_llm else build("llm", llm)
    tts_p, tel_p = build("tts", tts), build("telephony", telephony)
    if telephony is not None:  # a configured one was checked by resolve_providers
        problems = server_problems(settings, type(telephony))
        if problems:
            raise ConfigError("\n".join(problems))
    for warning in config_warnings(settings, registry, plugins=manager.plugins):
        logger.warning("%s", warning)
    logsafe.install()
    register_secrets(settings, resolved)
    for provider in (stt_p, llm_p, tts_p, tel_p):
        if provider is not None:
            logsafe.register_secrets(_secret_values(provider.settings))
    manager.collect_tools()
    all_tools = [*tools, *manager.tools.values()]
    agent = settings.agent
    builtins = builtin_tools(agent.builtin_tools, agent.transfer_allowlist)
    owners = {"create_app(tools=...)": list(tools), "[agent] builtin_tools": builtins}
    for info in manager.plugins.values():
        owners[f"plugin {info.name!r}"] = [manager.tools[n] for n in info.tools]
    try:  # every call would fail to start: say so now
        unique_tools([*all_tools, *builtins], owners)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    flow = flow_from_settings(settings)
    runtime = FlowRuntime(flow, apology=settings.agent.apology) if flow is not None else None
    problems = answering_problems(flow, has_llm=llm_p is not None)
    if problems:
        raise ConfigError("\n".join(problems))
    calls = CallManager(
        settings,
        stt=stt_p,
        llm=llm_p,
        tts=tts_p,
        hooks=Observers(manager),
        tools=all_tools,
        responder=runtime,
    )

    async def healthz(request: Any) -> Any:
        return JSONResponse(calls.health())

    providers = [p for p in (stt_p, llm_p, tts_p, tel_p) if p is not None]

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        for provider in providers:
            try:
                await provider.prepare()
            except ConfigError:
                raise  # every call would fail: do not start
            except Exception as exc:  # the first call pays for it instead
                logger.warning("preparing %s failed: %s", provider.name, exc)
        logger.info(
            "voicekit server ready: stt=%s llm=%s tts=%s telephony=%s",
            stt_p.name,
            llm_p.name if llm_p is not None else NO_LLM,
            tts_p.name,
            tel_p.name,
        )
        try:
            yield
        finally:
            await calls.drain(settings.server.shutdown_grace_s)
            if runtime is not None:
                await runtime.aclose()
            if calls.phrases is not None:  # let the queued disk writes finish
                await anyio.to_thread.run_sync(calls.phrases.close)
            for provider in providers:
                try:
                    await provider.aclose()
                except Exception as exc:
                    logger.warning("closing %s failed: %s", provider.name, exc)

    telephony_routes = list(tel_p.routes(calls))
    prefix = f"/telephony/{tel_p.name}"
    app = Starlette(
        routes=[Route("/healthz", healthz), Mount(prefix, routes=telephony_routes)],
        lifespan=lifespan,
    )
    app.state.calls = calls
    app.state.telephony = tel_p
    media = MediaFastPath.for_routes(app, prefix, telephony_routes)
    served = BodyLimit(media, settings.server.max_body_bytes)
    # A parent app that mounts this one (FastAPI's app.mount) does not run a mounted app's
    # lifespan: it passes this to its own, FastAPI(lifespan=voice.lifespan), so providers
    # close and calls drain at shutdown.
    served.lifespan = lifespan
    return served


def register_secrets(settings: VoiceKitSettings, resolved: ResolvedProviders | None) -> None:
    """Tell :mod:`voicekit.logsafe` every secret value these settings hold."""
    logsafe.register_secrets(_secret_values(settings))
    if resolved is not None:
        for model in resolved.settings.values():
            logsafe.register_secrets(_secret_values(model))


def _secret_values(value: Any) -> list[str]:
    if isinstance(value, SecretStr):
        return [value.get_secret_value()]
    if isinstance(value, BaseModel):
        return [
            s for name in type(value).model_fields for s in _secret_values(getattr(value, name))
        ]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _secret_values(item)]
    return []
