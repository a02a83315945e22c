"""Each first-party provider reads its key from the conventional variable, as a secret."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from voicekit_anthropic.settings import AnthropicSettings
from voicekit_elevenlabs.settings import ElevenLabsSettings
from voicekit_grok.settings import GrokSettings
from voicekit_openai.settings import OpenAISettings
from voicekit_soniox.settings import SonioxSettings
from voicekit_telnyx.settings import TelnyxSettings

from voicekit.errors import ConfigError
from voicekit.plugins.registry import credential_env_vars, validate_settings
from voicekit.provider import ProviderSettings

CASES: list[tuple[str, type[ProviderSettings], dict[str, str]]] = [
    ("elevenlabs", ElevenLabsSettings, {"api_key": "ELEVENLABS_API_KEY"}),
    ("soniox", SonioxSettings, {"api_key": "SONIOX_API_KEY"}),
    ("telnyx", TelnyxSettings, {"api_key": "TELNYX_API_KEY", "public_key": "TELNYX_PUBLIC_KEY"}),
    ("openai", OpenAISettings, {"api_key": "OPENAI_API_KEY"}),
    ("grok", GrokSettings, {"api_key": "XAI_API_KEY"}),
    ("anthropic", AnthropicSettings, {"api_key": "ANTHROPIC_API_KEY"}),
]


@pytest.mark.parametrize("name,cls,expected", CASES, ids=[c[0] for c in CASES])
def test_credentials_come_from_conventional_variables(
    name: str, cls: type[ProviderSettings], expected: dict[str, str]
) -> None:
    assert credential_env_vars(cls) == expected
    environ = {var: f"secret-{field}-value-9876" for field, var in expected.items()}
    if name == "telnyx":  # an Ed25519 public key is 32 bytes of base64; "9876" ends it
        environ["TELNYX_PUBLIC_KEY"] = "A" * 39 + "9876="
    settings = validate_settings(
        cls, {}, label=name, prefix=f"providers.{name}", source="t", environ=environ
    )
    for field in expected:
        value = getattr(settings, field)
        assert isinstance(value, SecretStr)
        assert value.get_secret_value() == environ[expected[field]]
    assert "9876" not in repr(settings) and "9876" not in str(settings.model_dump())


@pytest.mark.parametrize("name,cls,expected", CASES, ids=[c[0] for c in CASES])
def test_missing_key_names_the_variable(
    name: str, cls: type[ProviderSettings], expected: dict[str, str]
) -> None:
    with pytest.raises(ConfigError) as err:
        validate_settings(
            cls,
            {},
            label=name,
            prefix=f"providers.{name}",
            source=f"[providers.{name}]",
            environ={},
        )
    for var in expected.values():
        assert f"set the environment variable {var}" in str(err.value)


@pytest.mark.parametrize("name,cls,expected", CASES, ids=[c[0] for c in CASES])
def test_url_override_and_timeout_accepted(
    name: str, cls: type[ProviderSettings], expected: dict[str, str]
) -> None:
    url_field = next(f for f in ("url", "base_url") if f in cls.model_fields)
    options = {url_field: "http://127.0.0.1:9/x", "timeout": 2.5, **dict.fromkeys(expected, "k")}
    if "public_key" in expected:
        options["public_key"] = "A" * 43 + "="
    settings = cls.model_validate(options)
    assert getattr(settings, url_field) == "http://127.0.0.1:9/x" and settings.timeout == 2.5


def test_elevenlabs_rejects_v3_and_bad_schedule() -> None:
    with pytest.raises(ValueError, match="eleven_v3 is not available"):
        ElevenLabsSettings.model_validate({"api_key": "k", "model_id": "eleven_v3"})
    with pytest.raises(ValueError, match="between 50 and 500"):
        ElevenLabsSettings.model_validate({"api_key": "k", "chunk_length_schedule": [20]})
