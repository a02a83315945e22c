"""Docs stay in step with the code: every hook and every setting is documented."""

from __future__ import annotations

import inspect
from pathlib import Path

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
    ]:
        section = text.split(f"#### `[providers.{name}]`", 1)[1].split("####", 1)[0]
        for option in cls.model_fields:
            assert f"| `{option}` |" in section, (name, option)


def test_testing_guide_example_runs() -> None:
    """The example in docs/testing.md is real code: extract it and run it."""
    import re

    import anyio
    import trio.testing

    text = (DOCS / "testing.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    namespace: dict[str, object] = {}
    exec(compile("import anyio\n" + code.group(1), "docs/testing.md", "exec"), namespace)
    test = namespace["test_answers_the_caller"]
    anyio.run(
        test,
        backend="trio",  # type: ignore[arg-type]
        backend_options={"clock": trio.testing.MockClock(autojump_threshold=0)},
    )
