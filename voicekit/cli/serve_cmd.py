"""``voicekit serve``: run the server with uvicorn, draining calls on SIGTERM."""

from __future__ import annotations

import logging
import signal
from typing import Any

import anyio
import click

from voicekit.cli.main import cli, config_option, reports_errors
from voicekit.config import load_settings

logger = logging.getLogger(__name__)


async def _serve(app: Any, host: str, port: int) -> None:
    import uvicorn

    from voicekit.server._uvicorn import Server

    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", lifespan="on", ws="websockets-sansio"
    )
    server = Server(config)
    calls = app.state.calls

    async def on_signals() -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                logger.info("received %s: draining calls", signal.Signals(signum).name)
                await calls.drain(calls.settings.server.shutdown_grace_s)
                server.should_exit = True
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(on_signals)
        await server.serve()
        tg.cancel_scope.cancel()


@cli.command("serve")
@config_option
@click.option("--host", default=None, help="Interface to listen on ([server] host).")
@click.option("--port", type=int, default=None, help="TCP port ([server] port).")
@reports_errors
def serve_command(config_path: str | None, host: str | None, port: int | None) -> None:
    """Run the voicekit server: telephony webhooks, media streams, /healthz.

    On SIGTERM it refuses new calls, lets active calls finish for [server]
    shutdown_grace_s, then says farewell, hangs up, and writes every call record.
    """
    from voicekit.server import create_app

    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = load_settings(config_path, **({"server": overrides} if overrides else {}))
    app = create_app(settings)
    anyio.run(_serve, app, settings.server.host, settings.server.port)
