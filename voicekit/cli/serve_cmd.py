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


async def _serve(
    app: Any, host: str, port: int, dial: tuple[str, str | None] | None = None
) -> None:
    from voicekit.server._uvicorn import Server, server_config
    from voicekit.server.runtime import freeze_startup_heap

    calls = app.state.calls
    config = server_config(app, calls.settings.server, host=host, port=port, log_level="info")
    server = Server(config)

    async def stop() -> None:
        await calls.drain(calls.settings.server.shutdown_grace_s)
        server.should_exit = True

    async def on_signals() -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                logger.info("received %s: draining calls", signal.Signals(signum).name)
                await stop()
                return

    async def started() -> None:
        while not server.started:  # noqa: ASYNC110  (uvicorn offers no event)
            await anyio.sleep(0.05)

    async def when_started() -> None:
        await started()
        freeze_startup_heap()

    async def place_call(to: str, from_number: str | None) -> None:
        await started()
        call_id = await app.state.telephony.dial(to, from_number=from_number, host=calls)
        click.echo(f"dialling {to}: call {call_id}")
        while not any(r.call.call_id == call_id for r in calls.records):  # noqa: ASYNC110
            await anyio.sleep(0.2)
        record = next(r for r in calls.records if r.call.call_id == call_id)
        click.echo(f"call {call_id} ended: {record.end_reason}, {len(record.turns)} turns")
        await stop()

    async with anyio.create_task_group() as tg:
        tg.start_soon(on_signals)
        tg.start_soon(when_started)
        if dial is not None:
            tg.start_soon(place_call, *dial)
        await server.serve()
        tg.cancel_scope.cancel()


def _run_server(
    config_path: str | None,
    host: str | None,
    port: int | None,
    dial: tuple[str, str | None] | None = None,
) -> None:
    """Load settings (``--host``/``--port`` override ``[server]``), build the app, serve."""
    from voicekit.server import create_app
    from voicekit.server.runtime import backend_options

    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = load_settings(config_path, **({"server": overrides} if overrides else {}))
    app = create_app(settings)
    anyio.run(
        _serve,
        app,
        settings.server.host,
        settings.server.port,
        dial,
        backend_options=backend_options(settings.server.event_loop),
    )


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
    _run_server(config_path, host, port)


@cli.command("dial")
@click.argument("number")
@click.option(
    "--from",
    "from_number",
    default=None,
    help="Caller id (E.164); default [providers.<telephony>] from_number.",
)
@config_option
@click.option("--host", default=None, help="Interface to listen on ([server] host).")
@click.option("--port", type=int, default=None, help="TCP port ([server] port).")
@reports_errors
def dial_command(
    number: str,
    from_number: str | None,
    config_path: str | None,
    host: str | None,
    port: int | None,
) -> None:
    """Call NUMBER and run the agent when it answers; exit when the call ends.

    The server runs for the call's duration (the provider's webhooks and media stream
    reach it at [server] public_url). Answering machines get [turn] voicemail_action.
    """
    _run_server(config_path, host, port, dial=(number, from_number))
