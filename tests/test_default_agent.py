"""The default agent: the built-in front desk flow, with no LLM, as shipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from voicekit.config import load_settings
from voicekit.flows.builtin import BUILTIN_DESK, BUILTIN_FLOW, uses_builtin_flow, with_builtin_flow
from voicekit.simulate import DEFAULT_LINES

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]


def test_the_example_users_copy_is_the_built_in_flow() -> None:
    assert (ROOT / "examples/flows/front_desk.toml").read_text() == BUILTIN_FLOW.read_text()


def test_the_built_in_flow_runs_only_when_nothing_configures_the_agent() -> None:
    assert uses_builtin_flow(load_settings())
    assert uses_builtin_flow(load_settings(llm={"provider": "openai"}))  # the LLM helps it
    assert not uses_builtin_flow(load_settings(agent={"instructions": "You sell pizza."}))
    assert not uses_builtin_flow(load_settings(flow={"file": "mine.toml"}))
    settings = with_builtin_flow(load_settings())
    assert settings.flow.file == BUILTIN_FLOW
    assert BUILTIN_DESK in settings.agent.transfer_allowlist


def test_the_default_caller_lines_walk_the_flow_to_goodbye_with_no_llm() -> None:
    # What the offline recognizer makes of the default lines: lower case, no punctuation.
    heard = [
        line.lower().replace(",", "").replace(".", "").replace("?", "") for line in DEFAULT_LINES
    ]
    result = subprocess.run(
        [sys.executable, "-m", "voicekit", "flow", "chat", str(BUILTIN_FLOW), "--no-llm"],
        input="\n".join(heard) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    agent = [line for line in result.stdout.splitlines() if line.startswith("agent: ")]
    assert "eight to six" in agent[1]  # hours
    assert "Harbor View Road" in agent[2]  # the address
    assert "Which day" in agent[3]  # booking
    assert "noted friday" in agent[4].lower()  # the day, taken from the caller's words
    assert agent[5] == "agent: Thanks for calling Harbor View Dental. Goodbye!"


async def test_with_an_llm_the_same_agent_answers_what_its_keywords_do_not_cover() -> None:
    from tests.flow_helpers import ScriptedSpeech, engine
    from voicekit.flows.load import load_flow

    flow = load_flow(BUILTIN_FLOW, transfer_allowlist=[BUILTIN_DESK])
    e = engine(flow)
    opening = e.opening()
    assert opening is not None
    await opening(ScriptedSpeech(llm=False))
    speech = ScriptedSpeech(answers=[("Yes, we accept most dental plans.", [])])
    await e.reply_to("do you take my insurance")(speech)
    assert speech.said == ["Yes, we accept most dental plans."]
    assert "Harbor View Dental" in speech.asked[0][0]  # the flow's instructions reach it
    assert e.state()["node"] == "greeting"
    without = ScriptedSpeech(llm=False)
    await e.reply_to("do you take my insurance")(without)
    assert without.said == [flow.node("greeting").script]  # no LLM: the question again
