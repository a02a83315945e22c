"""Runs the tools the model calls in a call: each as a task of its own, with a timeout.

A tool's result (or its error, as text) goes back to the model, never to the caller.
Tools run as background tasks of the call, not of the reply that asked for them: when
the caller barges in, the reply stops, but a tool already running finishes (its side
effect happened) and its result reaches the history, so the model knows it was done.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import anyio

from voicekit.background import BackgroundTasks
from voicekit.llm import Tool, ToolCall
from voicekit.logsafe import redact
from voicekit.records import ToolRun
from voicekit.session.history import ToolStep
from voicekit.tools import FunctionTool, ToolContext, tool_result_text

__all__ = ["ToolRunner"]

logger = logging.getLogger(__name__)
MAX_ERROR_CHARS = 500  # of an error told to the model
MAX_RECORDED_ARGUMENTS = 2000  # characters of a call's arguments kept in the call record


class ToolRunner:
    def __init__(
        self,
        tools: Sequence[FunctionTool],
        context: ToolContext,
        *,
        timeout_s: float,
        call_id: str,
    ) -> None:
        self.tools = {t.name: t for t in tools}
        self.context = context
        self.timeout_s = timeout_s
        self.call_id = call_id
        self._tasks = BackgroundTasks(f"tools call={call_id}")

    @property
    def specs(self) -> list[Tool]:
        return [t.spec for t in self.tools.values()]

    def start(self, step: ToolStep, runs: list[ToolRun], calls: Sequence[ToolCall]) -> None:
        """Run ``calls`` (of ``step``); each result lands in ``step`` as it finishes."""
        for call in calls:
            self._tasks.start(self._run, step, call, runs)

    async def _run(self, step: ToolStep, call: ToolCall, runs: list[ToolRun]) -> None:
        started = anyio.current_time()
        error: str | None = None
        tool = self.tools.get(call.name)
        timeout = (tool.timeout_s if tool else None) or self.timeout_s
        try:
            if tool is None:
                raise LookupError(f"there is no tool named {call.name!r}")
            arguments = json.loads(call.arguments or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("the arguments are not a JSON object")
            with anyio.fail_after(timeout):
                result = tool_result_text(await tool.run(arguments, self.context))
        except TimeoutError:
            error = f"the tool {call.name} did not finish within {timeout:g} s"
        except Exception as exc:  # the model hears of it; the call goes on
            error = f"{type(exc).__name__}: {exc}"
        if error is not None:
            # The text goes to a third party (the model's provider) and into the record:
            # no credential an exception quoted (a URL's api_key, a header) goes with it.
            error = redact(error)[:MAX_ERROR_CHARS]
            logger.warning("call=%s: tool %s failed: %s", self.call_id, call.name, error)
            result = f"Error: {error}"
        runs.append(
            ToolRun(
                call.name,
                call.arguments[:MAX_RECORDED_ARGUMENTS],
                (anyio.current_time() - started) * 1000,
                error,
            )
        )
        step.set_result(call.id, result)

    async def aclose(self) -> None:
        """The call is over: stop tools still running."""
        await self._tasks.aclose()
