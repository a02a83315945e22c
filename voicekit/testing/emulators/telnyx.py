"""A loopback emulator of Telnyx Call Control v2 REST (PROTOCOLS.md §3b).

``POST /v2/calls`` (dial) and ``POST /v2/calls/{id}/actions/{action}``, with the documented
response and error shapes. Every command is recorded; tests (and the phone simulator)
wait for commands with :meth:`TelnyxEmulator.wait_for`. ``fail_next`` makes the next
requests answer with given HTTP statuses, to exercise retries.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import anyio

from voicekit.testing.emulators._server import LoopbackServer, ServedEmulator

__all__ = ["Command", "TelnyxEmulator"]

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _destination(value: str) -> bool:
    """An E.164 number or a SIP URI: what Telnyx dials."""
    return bool(E164.match(value)) or value.startswith(("sip:", "sips:"))


ACTIONS = {
    "answer", "hangup", "reject", "transfer", "playback_start", "playback_stop",
    "record_start", "record_stop", "streaming_start", "streaming_stop", "speak",
    "gather", "send_dtmf",
}  # fmt: skip


@dataclass
class Command:
    call_control_id: str | None
    action: str  # "dial" for POST /calls
    body: dict[str, Any]
    at: float


@dataclass
class _Call:
    alive: bool = True
    answered: bool = False
    history: list[str] = field(default_factory=list)


def _error(status: int, code: str, title: str, detail: str, pointer: str | None = None) -> Any:
    from starlette.responses import JSONResponse

    error: dict[str, Any] = {"code": code, "title": title, "detail": detail}
    if pointer:
        error["source"] = {"pointer": pointer}
    return JSONResponse({"errors": [error]}, status_code=status)


class TelnyxEmulator(ServedEmulator):
    def __init__(self, *, api_key: str = "test-telnyx-key") -> None:
        self.api_key = api_key
        self.commands: list[Command] = []
        self.calls: dict[str, _Call] = {}
        self.fail_next: list[int] = []
        self._changed = anyio.Event()
        self.server = LoopbackServer(self._app())

    @property
    def url(self) -> str:
        """Base URL for ``[providers.telnyx] base_url``."""
        return f"{self.server.http_url}/v2"

    def register_call(self, call_control_id: str) -> None:
        """An inbound call the phone simulator is about to announce."""
        self.calls[call_control_id] = _Call()

    def end_call(self, call_control_id: str) -> None:
        call = self.calls.get(call_control_id)
        if call is not None:
            call.alive = False

    def actions(self, call_control_id: str | None = None) -> list[str]:
        return [c.action for c in self.commands if call_control_id in (None, c.call_control_id)]

    async def wait_for(
        self, action: str, call_control_id: str | None = None, limit_s: float = 10.0
    ) -> Command:
        with anyio.fail_after(limit_s):
            while True:
                for command in self.commands:
                    if command.action == action and call_control_id in (
                        None,
                        command.call_control_id,
                    ):
                        return command
                await self._changed.wait()

    def _record(self, command: Command) -> None:
        self.commands.append(command)
        self._changed.set()
        self._changed = anyio.Event()

    def _app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.routing import Route

        return Starlette(
            routes=[
                Route("/v2/calls", self._dial, methods=["POST"]),
                Route(
                    "/v2/calls/{call_control_id}/actions/{action}", self._action, methods=["POST"]
                ),
            ]
        )

    async def _preamble(self, request: Any) -> tuple[dict[str, Any] | None, Any]:
        if self.fail_next:
            status = self.fail_next.pop(0)
            return None, _error(
                status,
                "10007" if status >= 500 else "10011",
                "Unexpected error" if status >= 500 else "Too many requests",
                "injected failure",
            )
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return None, _error(
                401, "10009", "Authentication failed", "The API key is missing or invalid."
            )
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            return None, _error(400, "10002", "Invalid request", "The body is not JSON.")
        return (body if isinstance(body, dict) else {}), None

    async def _dial(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        body, error = await self._preamble(request)
        if error is not None:
            return error
        assert body is not None
        for name in ("connection_id", "from", "to"):
            if not body.get(name):
                return _error(
                    422,
                    "10004",
                    "Missing required parameter",
                    f"The '{name}' parameter is required.",
                    f"/{name}",
                )
        for name in ("from", "to"):
            if not _destination(str(body[name])):
                return _error(
                    422,
                    "10016",
                    "Phone number must be in +E.164 format",
                    f"'{body[name]}' is not E.164.",
                    f"/{name}",
                )
        call_id = f"v3:{secrets.token_urlsafe(16)}"
        self.calls[call_id] = _Call()
        self._record(Command(call_id, "dial", body, anyio.current_time()))
        return JSONResponse(
            {
                "data": {
                    "call_control_id": call_id,
                    "call_leg_id": secrets.token_hex(8),
                    "call_session_id": secrets.token_hex(8),
                    "is_alive": False,
                    "record_type": "call",
                }
            }
        )

    async def _action(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        call_id = request.path_params["call_control_id"]
        action = request.path_params["action"]
        body, error = await self._preamble(request)
        if error is not None:
            return error
        assert body is not None
        call = self.calls.get(call_id)
        if action not in ACTIONS:
            return _error(404, "10005", "Resource not found", f"Unknown action {action}.")
        if call is None:
            return _error(
                404, "90015", "Invalid call_control_id", "The call_control_id is not valid."
            )
        if not call.alive:
            return _error(
                422,
                "90018",
                "Call has already ended",
                "This call is no longer active and can't receive commands.",
            )
        if action == "reject" and body.get("cause") not in ("CALL_REJECTED", "USER_BUSY"):
            return _error(
                422,
                "10004",
                "Missing required parameter",
                "cause must be CALL_REJECTED or USER_BUSY",
                "/cause",
            )
        if action == "transfer" and not body.get("to"):
            return _error(422, "10004", "Missing required parameter", "to is required", "/to")
        if action == "transfer" and not _destination(str(body["to"])):
            return _error(
                422,
                "10016",
                "Phone number must be in +E.164 format",
                f"'{body['to']}' is not E.164.",
                "/to",
            )
        if action == "answer":
            call.answered = True
        if action in ("hangup", "reject"):
            call.alive = False
        call.history.append(action)
        self._record(Command(call_id, action, body, anyio.current_time()))
        return JSONResponse({"data": {"result": "ok"}})
