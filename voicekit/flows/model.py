"""The flow file as a pydantic model: the shape of one node, one transition, one variable.

The names are a public format (DESIGN.md section 14): a flow written today must load
tomorrow. Rules that span nodes (targets exist, every node reachable, templates name
known variables) are checked in :mod:`voicekit.flows.check`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

__all__ = [
    "BUILTIN_VARIABLES",
    "ConversationNode",
    "EndingNode",
    "ExtractField",
    "Flow",
    "FunctionNode",
    "Node",
    "TransferNode",
    "Transition",
]

NODE_ID = r"^[A-Za-z][A-Za-z0-9_-]{0,47}$"
VARIABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,47}$"
# Filled by the call itself, usable in any template.
BUILTIN_VARIABLES = ("caller_number", "called_number", "call_id", "today")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _compiles(pattern: str | None) -> str | None:
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    return pattern


class ExtractField(_Strict):
    """A variable a conversation node collects from what the caller says."""

    name: str = Field(pattern=VARIABLE_NAME)
    type: Literal["string", "number", "boolean", "date", "enum"] = "string"
    description: str = ""
    values: list[str] | None = None
    pattern: str | None = None
    mandatory: bool = False
    reprompt: str | None = None

    _check_pattern = field_validator("pattern")(_compiles)

    @model_validator(mode="after")
    def _enum_values(self) -> ExtractField:
        if self.type == "enum" and not self.values:
            raise ValueError("an enum variable needs values = [...]")
        if self.type != "enum" and self.values is not None:
            raise ValueError("values is only for type = 'enum'")
        if self.mandatory and not self.reprompt:
            raise ValueError(
                "a mandatory variable needs reprompt: the text said when the caller has "
                "not given it"
            )
        return self


class Transition(_Strict):
    """Where a conversation node goes after a caller turn, and what decides it."""

    to: str
    keywords: list[str] = Field(default_factory=list)
    regex: str | None = None
    when: str | None = None
    always: bool = False

    _check_regex = field_validator("regex")(_compiles)

    @field_validator("keywords")
    @classmethod
    def _no_blank_keywords(cls, keywords: list[str]) -> list[str]:
        if any(not k.strip() for k in keywords):
            raise ValueError("a keyword must not be blank")
        return [k.strip() for k in keywords]

    @model_validator(mode="after")
    def _one_kind(self) -> Transition:
        deciders = bool(self.keywords) or self.regex is not None or self.when is not None
        if self.always and deciders:
            raise ValueError("an always transition takes no keywords, regex or when")
        if not self.always and not deciders:
            raise ValueError("a transition needs keywords, regex, when, or always = true")
        return self

    @property
    def deterministic(self) -> bool:
        """Decided by matching the caller's words, with no LLM."""
        return bool(self.keywords) or self.regex is not None


class ConversationNode(_Strict):
    """Speaks (a script as written, or what the LLM says following a prompt), then
    listens: the caller's turn fills variables and picks a transition."""

    id: str = Field(pattern=NODE_ID)
    type: Literal["conversation"] = "conversation"
    script: str | None = None
    prompt: str | None = None
    extract: list[ExtractField] = Field(default_factory=list)
    transitions: list[Transition] = Field(default_factory=list)

    @model_validator(mode="after")
    def _script_or_prompt(self) -> ConversationNode:
        if (self.script is None) == (self.prompt is None):
            raise ValueError("a conversation node has either script or prompt (one of them)")
        names = [f.name for f in self.extract]
        if len(names) != len(set(names)):
            raise ValueError("extract names a variable twice")
        always = [i for i, t in enumerate(self.transitions) if t.always]
        if len(always) > 1 or (always and always[0] != len(self.transitions) - 1):
            raise ValueError("at most one always transition, and it must be the last")
        return self


class FunctionNode(_Strict):
    """Calls a webhook, saves fields of its JSON answer into variables, moves on."""

    id: str = Field(pattern=NODE_ID)
    type: Literal["function"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=30)
    retries: int = Field(default=1, ge=0, le=3)
    save: dict[str, str] = Field(default_factory=dict)
    next: str
    on_error: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not re.match(r"^https?://", url.strip(), re.I):
            raise ValueError("url must start with https:// or http://")
        return url.strip()

    @field_validator("save")
    @classmethod
    def _variable_names(cls, save: dict[str, str]) -> dict[str, str]:
        for name in save:
            if not re.match(VARIABLE_NAME, name):
                raise ValueError(f"{name!r} is not a variable name (letters, digits, _)")
        return save


class TransferNode(_Strict):
    """Says its script (if any), then hands the call to a number or SIP URI."""

    id: str = Field(pattern=NODE_ID)
    type: Literal["transfer"]
    to: str = Field(min_length=1)
    script: str | None = None


class EndingNode(_Strict):
    """Says its farewell (if any), then hangs up once it has played."""

    id: str = Field(pattern=NODE_ID)
    type: Literal["ending"]
    script: str | None = None


Node = Annotated[
    ConversationNode | FunctionNode | TransferNode | EndingNode, Field(discriminator="type")
]


class Flow(_Strict):
    """A whole flow file."""

    version: Literal[1] = 1
    start: str
    first_speaker: Literal["agent", "caller"] = "agent"
    instructions: str = ""
    variables: dict[str, Any] = Field(
        default_factory=dict, description="Variables known before the call, by name."
    )
    apology: str | None = None
    allow_private_networks: bool = False
    decision_timeout_s: float = Field(default=3.0, gt=0, le=30)
    # On a script node whose decision needs the LLM, write the off-script answer at the
    # same time, held until the decision says no transition applies (one LLM request
    # more per such turn; the caller hears the answer a decision sooner).
    answer_while_deciding: bool = True
    nodes: list[Node] = Field(min_length=1)
    _index: dict[str, ConversationNode | FunctionNode | TransferNode | EndingNode] = PrivateAttr(
        default_factory=dict
    )

    @field_validator("nodes", mode="before")
    @classmethod
    def _default_type(cls, nodes: Any) -> Any:
        """A node without ``type`` is a conversation node."""
        if isinstance(nodes, list):
            return [
                {**n, "type": "conversation"} if isinstance(n, dict) and "type" not in n else n
                for n in nodes
            ]
        return nodes

    def model_post_init(self, context: Any) -> None:
        self._index = {n.id: n for n in self.nodes}

    def node(self, node_id: str) -> ConversationNode | FunctionNode | TransferNode | EndingNode:
        return self._index[node_id]

    def has_node(self, node_id: str) -> bool:
        return node_id in self._index
