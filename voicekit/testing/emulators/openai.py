"""A loopback emulator of OpenAI-compatible Chat Completions (PROTOCOLS.md §4a).

``POST /v1/chat/completions``, streaming and not. A streamed reply is exactly the SSE the
service sends: a first chunk with the role, content chunks, tool-call deltas (the first
of each call with its ``id``, ``type`` and name and empty arguments, then argument
fragments carrying only ``index``; interleaved across calls with
``interleave_tool_calls``), a last chunk with ``finish_reason``, the usage chunk with
empty ``choices`` when ``stream_options.include_usage`` asks for it, and ``data: [DONE]``.
Errors have OpenAI's body (``{"error": {"message", "type", "param", "code"}}``); a 429
carries ``retry-after``. Every request (body and headers) is logged in ``requests``.

The same emulator serves Grok: xAI's API is OpenAI-compatible, any model name is accepted.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from voicekit.testing.emulators._server import LoopbackServer, ServedEmulator
from voicekit.testing.emulators.llm_script import (
    LLMScript,
    ScriptedReply,
    ScriptedToolCall,
    StreamClock,
)

__all__ = ["OpenAIEmulator"]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}
MID_STREAM_ERROR = {
    "message": "The server had an error while processing your request.",
    "type": "server_error",
    "param": None,
    "code": None,
}


class OpenAIEmulator(LLMScript, ServedEmulator):
    """``async with OpenAIEmulator(replies=[...]) as llm:``; ``llm.url`` is the base URL."""

    def __init__(
        self,
        *,
        api_key: str | None = "test-openai-key",  # None: accept any key, or none
        interleave_tool_calls: bool = False,
        **script: Any,
    ) -> None:
        super().__init__(**script)
        self.api_key = api_key
        self.interleave_tool_calls = interleave_tool_calls
        self.server = LoopbackServer(self._app())

    @property
    def url(self) -> str:
        """Base URL for ``base_url`` (``.../v1``)."""
        return f"{self.server.http_url}/v1"

    def _app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.routing import Route

        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._completions, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    @staticmethod
    def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Any:
        from starlette.responses import JSONResponse

        body = {
            "error": {
                "message": message,
                "type": ERROR_TYPES.get(status, "server_error"),
                "param": None,
                "code": "invalid_api_key" if status == 401 else None,
            }
        }
        return JSONResponse(body, status_code=status, headers=headers)

    def _authorised(self, request: Any) -> bool:
        if self.api_key is None:  # a self-hosted server that checks no keys
            return True
        return bool(request.headers.get("authorization") == f"Bearer {self.api_key}")

    async def _models(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        await self.connection_delay(request.client)
        if not self._authorised(request):
            return self._error(401, "Incorrect API key provided.")
        return JSONResponse({"object": "list", "data": [{"id": "emulated", "object": "model"}]})

    async def _completions(self, request: Any) -> Any:
        from starlette.responses import JSONResponse, StreamingResponse

        await self.connection_delay(request.client)
        if not self._authorised(request):
            return self._error(401, "Incorrect API key provided.")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self._error(400, "We could not parse the JSON body of your request.")
        self.log_request(body, request.headers)
        failure = self.next_failure()
        if failure is not None:
            status, headers = failure
            return self._error(status, f"emulated failure {status}", headers)
        if not isinstance(body.get("messages"), list) or not body.get("model"):
            return self._error(400, "'model' and 'messages' are required.")
        reply = self.next_reply()
        if not body.get("stream"):
            return JSONResponse(self._completion(body, reply))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            self._events(body, reply, include_usage), media_type="text/event-stream"
        )

    def _usage(self, body: dict[str, Any], reply: ScriptedReply) -> dict[str, Any]:
        prompt = sum(len(str(m.get("content") or "").split()) for m in body["messages"])
        completion = len(self.tokens(reply.text)) + sum(len(c.arguments) for c in reply.tool_calls)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": prompt // 2},
        }

    def _completion(self, body: dict[str, Any], reply: ScriptedReply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in reply.tool_calls
            ]
        return {
            "id": f"chatcmpl-{secrets.token_hex(8)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
            "usage": self._usage(body, reply),
        }

    def _tool_deltas(self, calls: list[ScriptedToolCall]) -> list[dict[str, Any]]:
        """The tool-call deltas, in order (or interleaved across calls)."""
        per_call: list[list[dict[str, Any]]] = []
        for index, call in enumerate(calls):
            first = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            rest = [
                {"index": index, "function": {"arguments": piece}}
                for piece in self.argument_pieces(call.arguments)
            ]
            per_call.append([first, *rest])
        if not self.interleave_tool_calls:
            return [d for deltas in per_call for d in deltas]
        ordered: list[dict[str, Any]] = []
        for round_ in range(max((len(d) for d in per_call), default=0)):
            ordered += [deltas[round_] for deltas in per_call if round_ < len(deltas)]
        return ordered

    async def _events(
        self, body: dict[str, Any], reply: ScriptedReply, include_usage: bool
    ) -> AsyncIterator[bytes]:
        base = {
            "id": f"chatcmpl-{secrets.token_hex(8)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_emulated",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            data = {**base, "choices": [choice], "usage": None}
            return f"data: {json.dumps(data)}\n\n".encode()

        clock = StreamClock(self)
        fail_after = self.stream_failure()
        yield chunk({"role": "assistant", "content": ""})
        for n, token in enumerate(self.tokens(reply.text)):
            await clock.tick()
            if n == fail_after:
                yield f"data: {json.dumps({'error': MID_STREAM_ERROR})}\n\n".encode()
                self.reply_failed()
                return
            yield chunk({"content": token})
        async for delta in clock.paced(self._tool_deltas(list(reply.tool_calls))):
            yield chunk({"tool_calls": [delta]})
        yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
        if include_usage:
            usage = {**base, "choices": [], "usage": self._usage(body, reply)}
            yield f"data: {json.dumps(usage)}\n\n".encode()
        yield b"data: [DONE]\n\n"
