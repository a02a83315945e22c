"""Flow files: loading TOML and JSON, and every validation error naming node and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.flow_helpers import DESK, EXAMPLE
from voicekit.errors import ConfigError
from voicekit.flows import FlowError, load_flow, parse_flow
from voicekit.flows.templates import render_text, render_url, render_value


def problems_of(data: dict[str, Any], **kwargs: Any) -> list[str]:
    with pytest.raises(FlowError) as caught:
        parse_flow(data, **kwargs)
    return caught.value.problems


def two_nodes(**first: Any) -> dict[str, Any]:
    return {
        "start": "a",
        "nodes": [
            {"id": "a", "script": "Hi.", "transitions": [{"to": "b", "keywords": ["x"]}], **first},
            {"id": "b", "type": "ending", "script": "Bye."},
        ],
    }


def test_the_example_loads_as_toml_and_the_same_flow_as_json(tmp_path: Path) -> None:
    flow = load_flow(EXAMPLE, transfer_allowlist=[DESK])
    as_json = tmp_path / "desk.json"
    as_json.write_text(json.dumps(flow.model_dump(mode="json", exclude_defaults=True)))
    assert load_flow(as_json, transfer_allowlist=[DESK]) == flow


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"start": "nowhere"}, "start: there is no node 'nowhere' (nodes are: a, b)"),
        (
            {
                "nodes": [
                    {"id": "a", "script": "Hi.", "transitions": [{"to": "zz", "always": True}]}
                ]
            },
            "node 'a': transitions[0].to: there is no node 'zz'",
        ),
        (
            {"nodes": [{"id": "a", "script": "Hi."}, {"id": "b", "script": "Lost."}]},
            "node 'b': unreachable from start 'a'",
        ),
        (
            {"nodes": [{"id": "a", "script": "Hi.", "prompt": "Also this."}]},
            "node 'a': a conversation node has either script or prompt (one of them)",
        ),
        (
            {"nodes": [{"id": "a", "script": "Hi {{nmae}}."}]},
            "node 'a': script: {{nmae}} is not a variable of this flow",
        ),
        (
            {"nodes": [{"id": "a", "script": "Your key is {{env.API_KEY}}."}]},
            "node 'a': script: {{env.API_KEY}}: environment values are secrets",
        ),
        (
            {
                "nodes": [
                    {"id": "a", "script": "Hi.", "extract": [{"name": "n", "mandatory": True}]}
                ]
            },
            "node 'a': extract[0]: a mandatory variable needs reprompt",
        ),
        (
            {"nodes": [{"id": "a", "script": "Hi.", "extract": [{"name": "n", "type": "enum"}]}]},
            "node 'a': extract[0]: an enum variable needs values",
        ),
        (
            {"nodes": [{"id": "a", "script": "Hi.", "transitions": [{"to": "a", "regex": "("}]}]},
            "node 'a': transitions[0].regex: not a valid regular expression",
        ),
        (
            {"nodes": [{"id": "a", "script": "Hi.", "transitions": [{"to": "a"}]}]},
            "node 'a': transitions[0]: a transition needs keywords, regex, when, or always",
        ),
        (
            {
                "nodes": [
                    {
                        "id": "a",
                        "script": "Hi.",
                        "transitions": [{"to": "a", "always": True}, {"to": "a", "when": "x"}],
                    }
                ]
            },
            "node 'a': at most one always transition, and it must be the last",
        ),
        (
            {"nodes": [{"id": "a", "type": "transfer", "to": "+15550009999"}]},
            "node 'a': to: +15550009999 is not in [agent] transfer_allowlist",
        ),
        (
            {"nodes": [{"id": "a", "type": "meeting"}]},
            "node 'a': Input tag 'meeting' found using 'type' does not match any of the expected tags",
        ),
        (
            {"nodes": [{"id": "a", "script": "x", "colour": "red"}]},
            "node 'a': colour: Extra inputs",
        ),
        ({"version": 2}, "version: Input should be 1"),
        (
            {"variables": {"caller_number": "unknown"}},
            "variables: 'caller_number' is filled by the call itself",
        ),
        ({"apology": "Sorry {{who}}."}, "apology: {{who}} is not a variable of this flow"),
    ],
)
def test_each_problem_names_its_node_and_field(change: dict[str, Any], expected: str) -> None:
    data = {**two_nodes(), **change}
    found = problems_of(data, transfer_allowlist=[DESK])
    assert any(p.startswith(expected) for p in found), found


def test_a_loop_of_function_nodes_is_refused_and_one_through_the_caller_is_not() -> None:
    def function(node_id: str, nxt: str) -> dict[str, Any]:
        return {"id": node_id, "type": "function", "url": "https://x.example/", "next": nxt}

    looping = {
        "start": "a",
        "nodes": [
            {"id": "a", "script": "Hi.", "transitions": [{"to": "f", "keywords": ["go"]}]},
            function("f", "g"),
            function("g", "f"),
        ],
    }
    assert problems_of(looping) == [
        "node 'f': next: a loop of function nodes with no caller turn in it: f -> g -> f"
    ]
    through_caller = {**looping, "nodes": [*looping["nodes"][:2], function("g", "a")]}
    assert parse_flow(through_caller).start == "a"


def test_every_problem_is_reported_at_once_with_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        'start = "a"\n[[nodes]]\nid = "a"\nscript = "{{who}}"\n'
        '[[nodes.transitions]]\nto = "nope"\nalways = true\n'
    )
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: 2 problem(s) in the flow:")
    assert "there is no node 'nope'" in message and "{{who}}" in message


def test_unreadable_and_malformed_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_flow(tmp_path / "missing.toml")
    broken = tmp_path / "broken.json"
    broken.write_text("[" * 100_000)
    with pytest.raises(ConfigError, match=r"broken\.json: (not valid json|nested too deeply)"):
        load_flow(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    with pytest.raises(ConfigError, match="a flow is a table"):
        load_flow(listed)


def test_templates_render_variables_and_keep_secrets_out_of_speech() -> None:
    variables = {"name": "Ana", "count": 2.0, "ok": True, "missing": None}
    assert render_text("Hi {{ name }}, {{count}} items, ok: {{ok}}.", variables) == (
        "Hi Ana, 2 items, ok: yes."
    )
    assert render_text("Thanks {{missing}}, bye.", variables) == "Thanks, bye."
    assert render_text("{{env.SECRET}}", variables) == ""  # never spoken
    env = {"TOKEN": "s3cret"}
    assert render_value({"n": "{{count}}", "h": "Bearer {{env.TOKEN}}"}, variables, env=env) == {
        "n": 2.0,
        "h": "Bearer s3cret",
    }
    hostile = {"name": "../admin?x=1#"}
    assert render_url("https://crm.example/p/{{name}}", hostile, env=env) == (
        "https://crm.example/p/..%2Fadmin%3Fx%3D1%23"
    )


def test_a_variable_in_a_webhook_host_and_look_alike_targets_are_refused() -> None:
    data = {
        "start": "a",
        "nodes": [
            {
                "id": "a",
                "script": "Sales or refunds?",
                "extract": [{"name": "sub", "pattern": "(\\w+)"}],
                "transitions": [
                    {"to": "to-sales", "when": "sales"},
                    {"to": "to_sales", "when": "refunds"},
                ],
            },
            {
                "id": "to-sales",
                "type": "function",
                "url": "https://{{sub}}.example.com/x",
                "next": "a",
            },
            {
                "id": "to_sales",
                "type": "function",
                "url": "https://ok.example.com/{{sub}}",
                "next": "a",
            },
        ],
    }
    found = problems_of(data)
    assert any(
        p.startswith("node 'to-sales': url: a variable may not be in the host") for p in found
    )
    assert any("'to-sales' and 'to_sales' look the same to the LLM" in p for p in found)
    assert not any(p.startswith("node 'to_sales': url") for p in found)


def test_a_huge_chain_or_list_of_problems_stays_a_short_clear_error() -> None:
    chain = [{"id": "a", "script": "Go?", "transitions": [{"to": "f0", "keywords": ["go"]}]}]
    chain += [
        {"id": f"f{i}", "type": "function", "url": "https://x.example/", "next": f"f{i + 1}"}
        for i in range(3000)
    ]
    chain.append({"id": "f3000", "type": "ending"})
    deep = problems_of({"start": "a", "nodes": chain})
    assert deep == ["nodes: the flow's graph is too deep to check (a chain of hundreds of nodes)"]
    many = {"start": "a", "nodes": [{"id": f"n{i}", "script": "{{x}}"} for i in range(500)]}
    with pytest.raises(FlowError) as caught:
        parse_flow(many)
    assert len(caught.value.problems) == 501 and str(caught.value).endswith("... and 451 more")
