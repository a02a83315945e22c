"""The shape of a Telnyx webhook (PROTOCOLS.md §3c), validated before it is acted on.

A signature proves who sent a body, not that it has the shape the code expects: a signed
event whose ``payload`` is a list, or whose ``call_control_id`` is an object, must be a
clear 400, never an exception deep in a handler. Only the fields voicekit reads are typed;
the rest of a payload is kept as Telnyx sent it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

__all__ = ["CallPayload", "EventData", "TelnyxWebhook", "describe_invalid"]

Short = Annotated[str, StringConstraints(max_length=512)]
# Telnyx call ids look like "v3:Ab12-_..." (base64url after a version prefix). Nothing else
# is accepted: the id goes into REST paths and log lines.
CallId = Annotated[str, StringConstraints(max_length=256, pattern=r"^[A-Za-z0-9:_=+-]*$")]


class CallPayload(BaseModel):
    """The payload fields of call events that voicekit uses."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    call_control_id: CallId = ""
    direction: Short | None = None
    from_: Short | None = Field(default=None, alias="from")
    to: Short | None = None
    hangup_cause: Short | None = None
    result: Short | None = None
    failure_reason: Short | None = None


class EventData(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: Short
    event_type: Short
    payload: CallPayload | None = None


class TelnyxWebhook(BaseModel):
    """``{"data": {"id", "event_type", "payload": {...}}, "meta": {...}}``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    data: EventData


def describe_invalid(exc: ValidationError) -> str:
    """What is wrong with a webhook body, without echoing any of its values."""
    problems = [
        f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)[:3]
    ]
    return "; ".join(problems)
