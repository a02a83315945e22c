"""``voicekit serve``: run the server with uvicorn, draining calls on SIGTERM."""

from __future__ import annotations

import importlib.util
import logging
import re
import signal
import socket
from typing import Any

import anyio
import click

from voicekit.cli.main import cli, config_option, reports_errors
from voicekit.config import load_settings
from voicekit.config.resolve import telephony_configured
from voicekit.errors import ConfigError
from voicekit.plugins import load_plugins

logger = logging.getLogger(__name__)

DIALLABLE = re.compile(r"^(\+[1-9]\d{6,14}|sips?:[^\s@]+@[^\s@]+)$")


def _listen(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound now so that a busy port is a clear error."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror} (set [server] host or --host)"
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}; choose another port "
            "(--port or [server] port) or stop the program using this one"
        ) from None
    return sock


async def _serve(app: Any, sock: socket.socket, dial: tuple[str, str | None] | None = None) -> None:
    from voicekit.server._uvicorn import Server, server_config
    from voicekit.server.runtime import freeze_startup_heap

    calls = app.state.calls
    host, port = sock.getsockname()[:2]
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

    failures: list[Exception] = []

    async def place_call(to: str, from_number: str | None) -> None:
        await started()
        try:
            call_id = await app.state.telephony.dial(to, from_number=from_number, host=calls)
        except Exception as exc:  # reported after a clean shutdown, not as a crash
            failures.append(exc)
            server.should_exit = True
            return
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
        await server.serve(sockets=[sock])
        tg.cancel_scope.cancel()
    if failures:
        raise failures[0]


def _run_server(
    config_path: str | None,
    host: str | None,
    port: int | None,
    dial: tuple[str, str | None] | None = None,
) -> None:
    """Load settings (``--host``/``--port`` override ``[server]``), build the app, serve."""
    from voicekit.server import create_app
    from voicekit.server.runtime import backend_options

    for module in ("starlette", "uvicorn"):  # the server extra, checked before any work
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)

    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = load_settings(config_path, **({"server": overrides} if overrides else {}))
    try:
        app = create_app(settings)
    except ConfigError as exc:
        if telephony_configured(settings, load_plugins().registry):
            raise
        raise ConfigError(
            f"{exc}\nThe telephony is not set up yet (docs/quickstart.md). To talk to the "
            "agent without a phone line, run `voicekit simulate`."
        ) from None
    if dial is not None:
        app.state.telephony.check_dial(dial[1])
    options = backend_options(settings.server.event_loop)
    with _listen(settings.server.host, settings.server.port) as sock:
        anyio.run(_serve, app, sock, dial, backend_options=options)


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

    NUMBER is E.164 (+15551234567) or a SIP URI (sip:user@example.com). The server runs
    for the call's duration (the provider's webhooks and media stream reach it at
    [server] public_url). Answering machines get [turn] voicemail_action.
    """
    for label, value in (("NUMBER", number), ("--from", from_number)):
        if value is not None and not DIALLABLE.match(value):
            raise ConfigError(
                f"{label} {value!r} is not a phone number in E.164 form (+15551234567) "
                "or a SIP URI (sip:user@example.com)"
            )
    _run_server(config_path, host, port, dial=(number, from_number))
