"""Settings precedence, env names, and errors that name the origin, field and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicekit.config import load_settings
from voicekit.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "voicekit.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("VOICEKIT_"):
            monkeypatch.delenv(key)


def test_defaults_without_any_file() -> None:
    s = load_settings()
    assert s.agent.first_speaker == "agent"
    assert s.turn.min_interruption_words == 2 and s.turn.playout_lead_ms == 120
    assert (s.stt.provider, s.llm.provider, s.tts.provider) == ("local", "none", "local")
    assert s.telephony.provider == "telnyx"
    assert s.providers == {}


def test_precedence_arguments_over_env_over_file_over_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[agent]\ngreeting = "file"\ntemperature = 0.1\nmax_tokens = 50\n')
    monkeypatch.setenv("VOICEKIT_AGENT__TEMPERATURE", "0.7")
    monkeypatch.setenv("VOICEKIT_AGENT__GREETING", "env")
    s = load_settings(path, agent={"greeting": "argument"})
    assert s.agent.greeting == "argument"  # argument beats env and file
    assert s.agent.temperature == 0.7  # env beats file
    assert s.agent.max_tokens == 50  # file beats default
    assert s.agent.history_turns == 20  # default


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[tts]\nprovider = "elevenlabs"\n')
    monkeypatch.setenv("VOICEKIT_CONFIG", str(path))
    assert load_settings().tts.provider == "elevenlabs"


def test_swapping_a_provider_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[stt]\nprovider = "soniox"\n')
    assert load_settings(path).stt.provider == "soniox"
    monkeypatch.setenv("VOICEKIT_STT__PROVIDER", "deepgram")
    assert load_settings(path).stt.provider == "deepgram"


def test_provider_tables_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path, '[providers.elevenlabs]\nvoice_id = "abc"\nmodel_id = "eleven_flash_v2_5"\n'
    )
    monkeypatch.setenv("VOICEKIT_PROVIDERS__ELEVENLABS__VOICE_ID", "from-env")
    s = load_settings(path)
    assert s.provider_options("elevenlabs") == {
        "voice_id": "from-env",
        "model_id": "eleven_flash_v2_5",
    }
    assert s.provider_options("absent") == {}


def test_bad_value_in_file_names_file_field_and_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\nfirst_speaker = "robot"\n[turn]\nmin_interruption_words = 0\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    text = str(err.value)
    assert f"{path}: agent.first_speaker input should be 'agent' or 'caller'" in text
    assert f"{path}: turn.min_interruption_words input should be greater than or equal to 1" in text


def test_bad_value_in_env_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEKIT_SERVER__PORT", "99999")
    with pytest.raises(
        ConfigError,
        match=r"environment variable VOICEKIT_SERVER__PORT: server.port input should be less than or equal to 65535",
    ):
        load_settings()


def test_bad_argument_is_attributed_to_the_argument() -> None:
    with pytest.raises(ConfigError, match=r"argument: agent.history_turns"):
        load_settings(agent={"history_turns": -1})


def test_unknown_field_and_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent.greting is not a known setting"):
        load_settings(write(tmp_path, '[agent]\ngreting = "hi"\n'))
    with pytest.raises(
        ConfigError, match=r"unknown section\(s\) 'agnet'; the sections are \[agent\]"
    ):
        load_settings(write(tmp_path, '[agnet]\ngreeting = "hi"\n', "b.toml"))


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\ngreeting = "hi"\ntemperature = = 3\n')
    with pytest.raises(ConfigError, match=r"TOML syntax error: .*line 3, column 15"):
        load_settings(path)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[agent]\ngreeting = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(bad)


def test_flow_accepts_one_source_only(tmp_path: Path) -> None:
    path = write(tmp_path, '[flow]\nfile = "flow.toml"\n[flow.inline]\nstart = "a"\n')
    with pytest.raises(ConfigError, match=r"set either flow\.file or flow\.inline, not both"):
        load_settings(path)


def test_media_secret_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEKIT_SERVER__MEDIA_AUTH_SECRET", "hunter2-very-secret")
    s = load_settings()
    assert "hunter2" not in repr(s)
    assert s.server.media_auth_secret is not None
    assert s.server.media_auth_secret.get_secret_value() == "hunter2-very-secret"


def test_create_provider_builds_what_the_settings_select(tmp_path: Path) -> None:
    import voicekit
    from voicekit.testing import FakeTTS

    path = tmp_path / "voicekit.toml"
    path.write_text('[tts]\nprovider = "fake"\n[providers.fake]\nms_per_char = 7\n')
    settings = voicekit.load_settings(path)
    tts = voicekit.create_provider(settings, "tts")
    assert isinstance(tts, FakeTTS) and tts.settings.ms_per_char == 7  # type: ignore[attr-defined]
    path.write_text('[tts]\nprovider = "fake"\n[providers.fake]\nms_per_char = "slow"\n')
    with pytest.raises(voicekit.ConfigError, match=r"providers.fake.ms_per_char"):
        voicekit.create_provider(voicekit.load_settings(path), "tts")
    with pytest.raises(ValueError, match="kind must be one of"):
        voicekit.create_provider(settings, "speaker")  # type: ignore[call-overload]


def test_list_and_table_options_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import voicekit

    monkeypatch.setenv("ELEVENLABS_API_KEY", "xi-test-key-0001")
    monkeypatch.setenv("VOICEKIT_TTS__PROVIDER", "elevenlabs")
    monkeypatch.setenv("VOICEKIT_PROVIDERS__ELEVENLABS__CHUNK_LENGTH_SCHEDULE", "[50, 100]")
    monkeypatch.setenv("VOICEKIT_PROVIDERS__ELEVENLABS__VOICE_SETTINGS", '{"speed": 1.1}')
    tts = voicekit.create_provider(voicekit.load_settings(), "tts")
    assert tts.settings.chunk_length_schedule == [50, 100]  # type: ignore[attr-defined]
    assert tts.settings.voice_settings.speed == 1.1  # type: ignore[attr-defined]
    monkeypatch.setenv("VOICEKIT_PROVIDERS__ELEVENLABS__CHUNK_LENGTH_SCHEDULE", "[5]")
    with pytest.raises(voicekit.ConfigError) as err:
        voicekit.create_provider(voicekit.load_settings(), "tts")
    assert "providers.elevenlabs.chunk_length_schedule" in str(err.value)
    assert "from environment variable VOICEKIT_PROVIDERS__ELEVENLABS__CHUNK_LENGTH_SCHEDULE" in (
        str(err.value)
    )


def test_a_variant_of_a_plugin_reads_the_plugins_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Swapping elevenlabs for elevenlabs-rest is one line: the voice and model stay."""
    import voicekit

    monkeypatch.setenv("ELEVENLABS_API_KEY", "xi-test-key-0001")
    path = tmp_path / "voicekit.toml"
    path.write_text(
        '[tts]\nprovider = "elevenlabs-rest"\n'
        '[providers.elevenlabs]\nvoice_id = "my-voice"\nmodel_id = "eleven_turbo_v2_5"\n'
        "[providers.elevenlabs-rest]\ntimeout = 3\n"
    )
    tts = voicekit.create_provider(voicekit.load_settings(path), "tts")
    assert tts.name == "elevenlabs-rest"
    assert tts.settings.voice_id == "my-voice"  # type: ignore[attr-defined]
    assert tts.settings.model_id == "eleven_turbo_v2_5"  # type: ignore[attr-defined]
    assert tts.settings.timeout == 3


def test_transfer_settings_that_cannot_work_are_warned_about() -> None:
    from voicekit.config.resolve import agent_warnings

    def warnings(**agent: object) -> list[str]:
        return agent_warnings(load_settings(agent=agent))

    assert warnings(builtin_tools=["transfer_call"], transfer_allowlist=["+15551230000"]) == []
    assert "is empty" in warnings(builtin_tools=["transfer_call"])[0]
    assert "no transfer_call" in warnings(transfer_allowlist=["+15551230000"])[0]
    odd = warnings(
        builtin_tools=["transfer_call"],
        transfer_allowlist=["+1 (555) 123-0000", "sip:desk@pbx.example.com", "5551230000"],
    )
    assert len(odd) == 1 and "'5551230000' is neither an E.164 number" in odd[0]


def test_a_list_setting_from_the_environment_must_be_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEKIT_AGENT__BUILTIN_TOOLS", "end_call")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "environment variable VOICEKIT_AGENT__BUILTIN_TOOLS" in str(err.value)
    assert "takes a JSON list" in str(err.value)
    monkeypatch.setenv("VOICEKIT_AGENT__BUILTIN_TOOLS", '["end_call"]')
    assert load_settings().agent.builtin_tools == ["end_call"]
