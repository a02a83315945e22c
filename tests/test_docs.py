"""Docs stay in step with the code: every hook and every setting is documented."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from voicekit import hookspecs
from voicekit.config.settings import VoiceKitSettings

DOCS = Path(__file__).resolve().parents[1] / "docs"


def hook_names() -> list[str]:
    return [
        name
        for name, obj in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(obj, "voicekit_spec")
    ]


def test_every_hook_is_specified_and_has_a_docstring() -> None:
    names = hook_names()
    assert set(names) == {
        "register_stt",
        "register_llm",
        "register_tts",
        "register_telephony",
        "register_tools",
        "call_started",
        "turn_completed",
        "call_ended",
    }
    for name in names:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), name


def test_every_hook_is_documented_in_plugins_md() -> None:
    text = (DOCS / "plugins.md").read_text()
    missing = [name for name in hook_names() if f"`{name}(" not in text]
    assert not missing, f"hooks missing from docs/plugins.md: {missing}"


def test_every_setting_is_documented_with_its_env_name() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = []
    for section, field in VoiceKitSettings.model_fields.items():
        if section == "providers":
            assert "[providers.<name>]" in text
            continue
        for name in field.annotation.model_fields:  # type: ignore[union-attr]
            env = f"VOICEKIT_{section.upper()}__{name.upper()}"
            if f"`{name}`" not in text or env not in text:
                missing.append(env)
    assert not missing, f"settings missing from docs/configuration.md: {missing}"


def test_first_party_provider_options_are_documented() -> None:
    from voicekit_anthropic.settings import AnthropicSettings
    from voicekit_elevenlabs.settings import ElevenLabsSettings
    from voicekit_grok.settings import GrokSettings
    from voicekit_local.settings import LocalSTTSettings, LocalTTSSettings
    from voicekit_openai.settings import OpenAISettings
    from voicekit_soniox.settings import SonioxSettings
    from voicekit_telnyx.settings import TelnyxSettings

    text = (DOCS / "configuration.md").read_text()
    for name, cls in [
        ("elevenlabs", ElevenLabsSettings),
        ("soniox", SonioxSettings),
        ("telnyx", TelnyxSettings),
        ("openai", OpenAISettings),
        ("grok", GrokSettings),
        ("anthropic", AnthropicSettings),
        ("local", LocalTTSSettings),
        ("local", LocalSTTSettings),
    ]:
        section = text.split(f"#### `[providers.{name}]`", 1)[1].split("####", 1)[0]
        for option in cls.model_fields:
            assert f"| `{option}` |" in section, (name, option)


DOC_FILES = sorted([*DOCS.glob("*.md"), *DOCS.glob("providers/*.md"), DOCS.parent / "README.md"])
BLOCK = re.compile(r"(?:<!-- *(fragment|pytest) *-->\n)?```python\n(.*?)```", re.S)


def python_blocks() -> list[tuple[str, str, str]]:
    """(id, marker, code) of every ```python block in the docs and the README."""
    found = []
    for path in DOC_FILES:
        for n, match in enumerate(BLOCK.finditer(path.read_text()), 1):
            found.append((f"{path.relative_to(DOCS.parent)}#{n}", match[1] or "", match[2]))
    return found


BLOCKS = [b for b in python_blocks() if b[1] != "fragment"]


def _block_params() -> list[Any]:
    """The blocks as test parameters; one that places a call on a loopback server spends
    seconds listening in real time, so it is marked ``waits`` to start early."""
    return [
        pytest.param(
            marker,
            code,
            id=block_id,
            marks=[pytest.mark.waits] if "PhoneSimulator" in code else [],
        )
        for block_id, marker, code in BLOCKS
    ]


@pytest.mark.parametrize("marker, code", _block_params())
def test_every_python_block_in_the_docs_runs_as_written(
    tmp_path: Path, marker: str, code: str
) -> None:
    """Each block, exactly as written (nothing prepended), as a user would run it, in a
    fresh interpreter: a program with ``python``, a test file with ``pytest`` (in this
    process, a block could pass on modules the suite had already imported). A block that
    is only a piece of something larger says so with ``<!-- fragment -->`` before it."""
    script = tmp_path / ("test_doc.py" if marker == "pytest" else "doc.py")
    script.write_text(code)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(script)]
    if marker != "pytest":
        command = [sys.executable, str(script)]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_fragments_are_few_and_marked() -> None:
    fragments = [b[0] for b in python_blocks() if b[1] == "fragment"]
    assert len(fragments) <= 3, fragments
