"""Tools the model can call during a call: async Python functions with a JSON-Schema
description.

Write one with :func:`tool`; give tools to a call in code (``CallSession(..., tools=[...])``,
``create_app(..., tools=[...])``) or from a plugin's ``register_tools(register)`` hook::

    @voicekit.tool(description="Opening hours on a given day of the week.")
    async def opening_hours(day: str) -> str:
        return HOURS.get(day.lower(), "closed")

Parameters come from the function's signature (``str``, ``int``, ``float``, ``bool``,
optionally ``Literal[...]``; a parameter without a default is required) unless a
``parameters`` schema is given. A tool that wants to act on the call (hang up, transfer)
declares a ``context: ToolContext`` parameter; it is passed in and not shown to the model.

The session runs a tool when the model asks, with a timeout, and sends the result back to
the model as text (a dict or list as JSON). A tool that raises, or times out, returns its
error to the model, never to the caller. ``end_call`` and ``transfer_call`` are built in
(:func:`builtin_tools`), offered when ``[agent] builtin_tools`` names them.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import re
import types
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import (
    Any,
    Literal,
    Protocol,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    overload,
)

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from voicekit.llm import Tool
from voicekit.telephony import CallInfo

__all__ = [
    "BUILTIN_TOOL_NAMES",
    "FunctionTool",
    "ToolContext",
    "builtin_tools",
    "call_tools",
    "tool",
    "tool_result_text",
    "unique_tools",
]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ToolContext(Protocol):
    """What a tool may do to the call it runs in."""

    @property
    def call(self) -> CallInfo: ...

    def end_call(self) -> None:
        """Hang up once the reply in progress (its goodbye) has played."""

    def transfer(self, to: str) -> None:
        """Transfer the call once the reply in progress has played."""

    def may_transfer_to(self, to: str) -> bool:
        """Whether ``to`` is in ``[agent] transfer_allowlist``."""


@dataclass(frozen=True)
class FunctionTool:
    """A tool: its description for the model, and the function that runs it."""

    name: str
    description: str
    handler: Callable[..., Awaitable[Any]]
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    timeout_s: float | None = None  # None: ``[agent] tool_timeout_s``
    wants_context: bool = False
    # Checks and converts the model's arguments (made from the signature by ``tool``);
    # None: the arguments go to the handler as the model sent them.
    arguments: type[BaseModel] | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"tool name {self.name!r}: letters, digits, '_' and '-' only, at most 64"
            )
        if not inspect.iscoroutinefunction(self.handler):
            raise TypeError(f"tool {self.name!r}: the handler must be an async function")

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function itself, as if it were not a tool (in your own tests)."""
        return await self.handler(*args, **kwargs)

    @property
    def spec(self) -> Tool:
        """What the model is told about the tool."""
        return Tool(self.name, self.description, self.parameters)

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> Any:
        """Run the handler on the model's ``arguments``. Arguments that do not fit the
        signature raise ``ValueError`` saying which and why (the model reads it and can
        call again)."""
        kwargs = self._checked(arguments)
        if self.wants_context:
            kwargs["context"] = context
        return await self.handler(**kwargs)

    def _checked(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        if self.arguments is None:
            return dict(arguments)
        try:
            valid = self.arguments.model_validate(dict(arguments))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise ValueError(f"invalid arguments for {self.name}: {problems}") from None
        return {name: getattr(valid, name) for name in type(valid).model_fields}


@overload
def tool(func: Callable[..., Awaitable[Any]]) -> FunctionTool: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    timeout_s: float | None = None,
) -> Callable[[Callable[..., Awaitable[Any]]], FunctionTool]: ...
def tool(
    func: Callable[..., Awaitable[Any]] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    timeout_s: float | None = None,
) -> FunctionTool | Callable[[Callable[..., Awaitable[Any]]], FunctionTool]:
    """Make an async function a :class:`FunctionTool` (usable bare or with options)."""

    def wrap(f: Callable[..., Awaitable[Any]]) -> FunctionTool:
        text = description or inspect.getdoc(f) or ""
        if not text:
            raise ValueError(f"tool {f.__name__!r} needs a description (or a docstring)")
        wants_context = "context" in inspect.signature(f).parameters
        return FunctionTool(
            name=name or f.__name__,
            description=text,
            handler=f,
            parameters=dict(parameters) if parameters is not None else _schema_of(f),
            timeout_s=timeout_s,
            arguments=None if parameters is not None else _arguments_model(f),
            wants_context=wants_context,
        )

    return wrap(func) if func is not None else wrap


_JSON_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _schema_of(func: Callable[..., Any]) -> dict[str, Any]:
    """A JSON Schema object for ``func``'s parameters (``context`` excluded)."""
    hints = get_type_hints(func)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(func).parameters.values():
        if param.name == "context":
            continue
        properties[param.name] = _schema_of_type(hints.get(param.name, str), func, param.name)
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _arguments_model(func: Callable[..., Any]) -> type[BaseModel]:
    """A pydantic model of ``func``'s parameters (``context`` excluded): unknown names
    are refused, numbers and text are converted where the meaning is plain."""
    hints = get_type_hints(func)
    fields: dict[str, Any] = {}
    for param in inspect.signature(func).parameters.values():
        if param.name == "context":
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (hints.get(param.name, str), default)
    config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    return create_model(f"{func.__name__}_arguments", __config__=config, **fields)


def _schema_of_type(hint: Any, func: Callable[..., Any], name: str) -> dict[str, Any]:
    origin = get_origin(hint)
    if origin is Literal:
        values = list(get_args(hint))
        return {"type": _JSON_TYPES.get(type(values[0]), "string"), "enum": values}
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if len(options) == 1:
            return _schema_of_type(options[0], func, name)
    if origin in (list, Sequence, tuple):
        items = get_args(hint)
        return {"type": "array", "items": _schema_of_type(items[0], func, name) if items else {}}
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    raise TypeError(
        f"tool {func.__name__!r}: parameter {name!r} has type {hint!r}; use str, int, float, "
        "bool, Literal or list of those, or pass parameters= (a JSON Schema)"
    )


def tool_result_text(value: Any) -> str:
    """A tool's return value as the text the model reads."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


BUILTIN_TOOL_NAMES = ("end_call", "transfer_call")


def unique_tools(
    tools: Sequence[FunctionTool], owners: Mapping[str, Sequence[FunctionTool]] | None = None
) -> list[FunctionTool]:
    """``tools`` as a list, or ValueError if two share a name (the model could not tell
    them apart, and one would silently never run). ``owners`` (who gave which tools:
    ``{"create_app(tools=...)": [...], "plugin 'acme'": [...]}``) names where each came from."""
    names = [t.name for t in tools]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        where = ""
        if owners:
            name = twice[0]
            givers = [who for who, given in owners.items() for t in given if t.name == name]
            where = f" ({' and '.join(givers)})"
        raise ValueError(f"two tools are named {', '.join(map(repr, twice))}{where}; rename one")
    return list(tools)


def builtin_tools(names: Sequence[str], destinations: Sequence[str] = ()) -> list[FunctionTool]:
    """The built-in tools called ``names`` (``end_call``, ``transfer_call``).

    ``transfer_call`` offers exactly ``destinations`` (``[agent] transfer_allowlist``) as
    the values its argument may take, so the model sees the numbers it may use."""
    found = {"end_call": _end_call, "transfer_call": _transfer_to_one_of(destinations)}
    unknown = [n for n in names if n not in found]
    if unknown:
        raise ValueError(f"unknown built-in tools {unknown}; there are {sorted(found)}")
    return [found[n] for n in names]


def _transfer_to_one_of(destinations: Sequence[str]) -> FunctionTool:
    if not destinations:
        return _transfer_call
    schema = {
        "type": "object",
        "properties": {
            "destination": {
                "type": "string",
                "enum": list(destinations),
                "description": "Where to transfer the call: one of these, exactly.",
            }
        },
        "required": ["destination"],
    }
    return dataclasses.replace(_transfer_call, parameters=schema)


@tool(
    name="end_call",
    description="End the call, after your reply (say goodbye in it) has been heard. Use it "
    "when the caller has nothing more to ask or wants to hang up.",
    parameters={"type": "object", "properties": {}},
)
async def _end_call(context: ToolContext) -> str:
    context.end_call()
    return "The call will end once your reply has been heard."


@tool(
    name="transfer_call",
    description="Transfer the caller to a person or department at one of the numbers you "
    "were given. Only those numbers are allowed.",
    parameters={
        "type": "object",
        "properties": {
            "destination": {
                "type": "string",
                "description": "The phone number (E.164) or SIP URI to transfer to.",
            }
        },
        "required": ["destination"],
    },
)
async def _transfer_call(destination: str, context: ToolContext) -> str:
    if not context.may_transfer_to(destination):
        return f"Refused: {destination} is not a number this agent may transfer to."
    context.transfer(destination)
    return f"The caller will be transferred to {destination} once your reply has been heard."


def call_tools(
    tools: Sequence[FunctionTool],
    builtins: Sequence[str],
    transfer_allowlist: Sequence[str],
    *,
    can_transfer: bool,
    call_id: str,
) -> list[FunctionTool]:
    """The tools one call offers: the app's and the built-in ones configured, without
    ``transfer_call`` when the call's telephony cannot transfer (never offer what the
    line cannot do), each name once."""
    names = list(builtins)
    if "transfer_call" in names and not can_transfer:
        names.remove("transfer_call")
        logger.warning(
            "call=%s: [agent] builtin_tools has transfer_call, but this call's "
            "telephony cannot transfer; the tool is not offered",
            call_id,
        )
    return unique_tools([*tools, *builtin_tools(names, transfer_allowlist)])
