"""A loopback emulator of Anthropic's Messages API, streaming (PROTOCOLS.md §4c).

``POST /v1/messages`` with ``anthropic-version`` and the key in ``x-api-key`` (PROTOCOLS.md)
or as ``Authorization: Bearer`` (what the ``anthropic`` SDK 2.x sends): both are accepted.
A streamed reply is the SSE the service sends: ``message_start`` (with input usage,
cache reads included), for each content block ``content_block_start``, its deltas
(``text_delta``, or ``input_json_delta`` fragments for a ``tool_use`` block) and
``content_block_stop``, ``ping`` events among them, then ``message_delta`` with the stop
reason and output usage, and ``message_stop``. Errors have Anthropic's body
(``{"type": "error", "error": {"type", "message"}}``); a 429 carries ``retry-after``.
Every request (body and headers) is logged in ``requests``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

from voicekit.testing.emulators._server import LoopbackServer, ServedEmulator
from voicekit.testing.emulators.llm_script import LLMScript, ScriptedReply, StreamClock

__all__ = ["AnthropicEmulator"]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class AnthropicEmulator(LLMScript, ServedEmulator):
    """``async with AnthropicEmulator(replies=[...]) as llm:``; ``llm.url`` is the base URL."""

    def __init__(self, *, api_key: str = "test-anthropic-key", **script: Any) -> None:
        super().__init__(**script)
        self.api_key = api_key
        self._cached_prefixes: set[str] = set()
        self.server = LoopbackServer(self._app())

    @property
    def url(self) -> str:
        """Base URL for ``base_url`` (the SDK adds ``/v1/messages``)."""
        return self.server.http_url

    def _app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.routing import Route

        return Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    def _authorised(self, request: Any) -> bool:
        headers = request.headers
        return bool(
            headers.get("x-api-key") == self.api_key
            or headers.get("authorization") == f"Bearer {self.api_key}"
        )

    @staticmethod
    def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Any:
        from starlette.responses import JSONResponse

        body = {
            "type": "error",
            "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
        }
        return JSONResponse(body, status_code=status, headers=headers)

    async def _models(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        await self.connection_delay(request.client)
        if not self._authorised(request):
            return self._error(401, "invalid x-api-key")
        return JSONResponse({"data": [{"id": "emulated", "type": "model"}], "has_more": False})

    async def _messages(self, request: Any) -> Any:
        from starlette.responses import JSONResponse, StreamingResponse

        await self.connection_delay(request.client)
        if not self._authorised(request):
            return self._error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self._error(400, "anthropic-version: header is required")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self._error(400, "The request body is not valid JSON.")
        self.log_request(body, request.headers)
        failure = self.next_failure()
        if failure is not None:
            status, headers = failure
            return self._error(status, f"emulated failure {status}", headers)
        if not body.get("model") or not isinstance(body.get("messages"), list):
            return self._error(400, "model: Field required")
        if not isinstance(body.get("max_tokens"), int):
            return self._error(400, "max_tokens: Field required")
        reply = self.next_reply()
        if not body.get("stream"):
            return JSONResponse(self._message(body, reply))
        return StreamingResponse(self._events(body, reply), media_type="text/event-stream")

    def _usage_in(self, body: dict[str, Any]) -> dict[str, int]:
        """Input tokens (words, here) as the service counts them: the part marked for the
        cache is written to it on the first request (``cache_creation_input_tokens``)
        and read from it on later ones (``cache_read_input_tokens``)."""
        text = json.dumps(body.get("system", "")) + json.dumps(body["messages"])
        prompt = len(text.split())
        if not _has_cache_control(body):
            return {"input_tokens": prompt}
        prefix = json.dumps([body.get("system"), body.get("tools")])
        cached = len(prefix.split())
        if prefix in self._cached_prefixes:
            return {"input_tokens": prompt - cached, "cache_read_input_tokens": cached}
        self._cached_prefixes.add(prefix)
        return {"input_tokens": prompt - cached, "cache_creation_input_tokens": cached}

    def _message(self, body: dict[str, Any], reply: ScriptedReply) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        content += [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": json.loads(c.arguments)}
            for c in reply.tool_calls
        ]
        return {
            "id": f"msg_{secrets.token_hex(8)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": {**self._usage_in(body), "output_tokens": len(self.tokens(reply.text))},
        }

    async def _events(self, body: dict[str, Any], reply: ScriptedReply) -> AsyncIterator[bytes]:
        clock = StreamClock(self)
        fail_after = self.stream_failure()
        message = {
            "id": f"msg_{secrets.token_hex(8)}",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": body["model"],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**self._usage_in(body), "output_tokens": 1},
        }
        yield _sse("message_start", {"type": "message_start", "message": message})
        yield _sse("ping", {"type": "ping"})
        index = 0
        output = 0
        if reply.text:
            text_block = {"type": "text", "text": ""}
            yield _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": text_block},
            )
            for n, token in enumerate(self.tokens(reply.text)):
                await clock.tick()
                if n == fail_after:
                    error = {"type": "overloaded_error", "message": "Overloaded"}
                    yield _sse("error", {"type": "error", "error": error})
                    self.reply_failed()
                    return
                output += 1
                delta = {"type": "text_delta", "text": token}
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        for call in reply.tool_calls:
            block: dict[str, Any] = {"type": "tool_use", "id": call.id, "name": call.name}
            block["input"] = {}
            yield _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
            async for piece in clock.paced(self.argument_pieces(call.arguments)):
                output += 1
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        stop = "tool_use" if reply.tool_calls else "end_turn"
        yield _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": output},
            },
        )
        yield _sse("message_stop", {"type": "message_stop"})


def _has_cache_control(body: dict[str, Any]) -> bool:
    system = body.get("system")
    blocks = system if isinstance(system, list) else []
    tools = body.get("tools") or []
    return any(isinstance(b, dict) and "cache_control" in b for b in [*blocks, *tools])
