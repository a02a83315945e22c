"""The command line: --version, --help everywhere, plugins listing, config check."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tests.conftest import PluginDistFactory
from voicekit import __version__
from voicekit.cli import cli
from voicekit.cli import commands as _commands  # noqa: F401  (registers subcommands)

ALL_ROLES_PLUGIN = """
from typing import ClassVar
from pydantic import SecretStr
import voicekit
from voicekit import STT, LLM, TTS, Telephony, ProviderSettings, credential

class TTSSettings(ProviderSettings):
    api_key: SecretStr = credential("ROLES_TTS_KEY")
    voice: str = "default-voice"

class RolesSTT(STT):
    name: ClassVar[str] = "roles"
    input_formats = (voicekit.ULAW_8K,)
    def stream(self, fmt, *, call_id=None): raise RuntimeError("unused")

class RolesLLM(LLM):
    name: ClassVar[str] = "roles"
    async def stream(self, messages, **kw):
        yield voicekit.TextDelta("hi")

class RolesTTS(TTS):
    name: ClassVar[str] = "roles"
    Settings: ClassVar[type[ProviderSettings]] = TTSSettings
    output_formats = (voicekit.ULAW_8K,)
    def session(self, fmt, *, call_id=None): raise RuntimeError("unused")

class RolesTelephony(Telephony):
    name: ClassVar[str] = "roles"
    async def hangup(self, call_id): pass
    async def dial(self, to, *, from_number=None, **options): return "c"
    async def transfer(self, call_id, to): pass

@voicekit.hookimpl
def register_stt(register): register(RolesSTT)
@voicekit.hookimpl
def register_llm(register): register(RolesLLM)
@voicekit.hookimpl
def register_tts(register): register(RolesTTS)
@voicekit.hookimpl
def register_telephony(register): register(RolesTelephony)
"""

ROLES_CONFIG = """
[stt]
provider = "roles"
[llm]
provider = "roles"
[tts]
provider = "roles"
[telephony]
provider = "roles"
[server]
public_url = "https://voice.example.com"
[providers.roles]
voice = "v2"
[providers.elsewhere]
api_key = "sk-should-never-print"
region = "eu"
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("VOICEKIT_") or key == "ROLES_TTS_KEY":
            monkeypatch.delenv(key)


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            found += all_commands(cmd, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_every_command_has_help() -> None:
    runner = CliRunner()
    commands = all_commands(cli)
    assert ("plugins",) in commands and ("config", "check") in commands
    for path in commands:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output and len(result.output.splitlines()) > 3


def test_plugins_lists_first_party_with_versions() -> None:
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    listed = {p["name"]: p for p in json.loads(result.output)}
    assert {"elevenlabs", "soniox", "telnyx", "openai", "grok", "anthropic", "local"} <= set(listed)
    assert (
        listed["telnyx"]["distribution"] == "voicekit"
        and listed["telnyx"]["version"] == __version__
    )


def roles_plugin_missing_its_sdk(plugin_dist: PluginDistFactory) -> None:
    """The roles plugin, installed, with its extra's package not installed."""
    plugin_dist(
        "roles-dist",
        {"roles": "roles_plugin"},
        {"roles_plugin": ALL_ROLES_PLUGIN},
        extras=["roles"],
        requires=['missing-sdk ; extra == "roles"'],
    )


def test_plugins_text_shows_providers_and_missing_extras(plugin_dist: PluginDistFactory) -> None:
    roles_plugin_missing_its_sdk(plugin_dist)
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("roles "))
    assert "roles-dist 1.0" in line and "stt:roles" in line and "telephony:roles" in line
    assert 'missing missing-sdk: pip install "roles-dist[roles]"' in result.output


def test_config_check_fails_when_a_chosen_provider_lacks_its_packages(
    tmp_path: Path, plugin_dist: PluginDistFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config that passes the check starts: a provider whose plugin loaded but misses
    a package is caught here, not at `voicekit serve` or `simulate`."""
    roles_plugin_missing_its_sdk(plugin_dist)
    monkeypatch.setenv("ROLES_TTS_KEY", "xi-very-secret-key-123456")
    path = tmp_path / "voicekit.toml"
    path.write_text(ROLES_CONFIG)
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2, result.output
    for kind in ("stt", "llm", "tts", "telephony"):
        assert f"[{kind}] provider: {kind} provider 'roles' needs packages" in result.output
    assert 'pip install "roles-dist[roles]"' in result.output


def test_config_check_prints_effective_settings_masked(
    tmp_path: Path, plugin_dist: PluginDistFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin_dist("roles-dist", {"roles": "roles_plugin"}, {"roles_plugin": ALL_ROLES_PLUGIN})
    monkeypatch.setenv("ROLES_TTS_KEY", "xi-very-secret-key-123456")
    path = tmp_path / "voicekit.toml"
    path.write_text(ROLES_CONFIG)
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "xi-very" not in out and "123456" not in out and "sk-should" not in out
    assert 'api_key = "**********"' in out
    assert 'voice = "v2"' in out and 'region = "eu"' in out
    assert "[providers.roles.tts]" in out and "[providers.roles.stt]" in out
    assert "[agent]" in out and "[providers.elsewhere]" in out
    as_json = CliRunner().invoke(cli, ["config", "check", "--config", str(path), "--json"])
    data = json.loads(as_json.stdout)
    assert data["providers"]["roles"]["tts"]["api_key"] == "**********"
    assert data["providers"]["elsewhere"]["api_key"] == "**********"
    assert data["tts"]["provider"] == "roles"


def test_config_check_missing_credential_names_variable(
    tmp_path: Path, plugin_dist: PluginDistFactory
) -> None:
    plugin_dist("roles-dist", {"roles": "roles_plugin"}, {"roles_plugin": ALL_ROLES_PLUGIN})
    path = tmp_path / "voicekit.toml"
    path.write_text(ROLES_CONFIG)
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert "set the environment variable ROLES_TTS_KEY" in result.output


def test_config_check_unknown_provider_lists_installed(
    tmp_path: Path, plugin_dist: PluginDistFactory
) -> None:
    plugin_dist("roles-dist", {"roles": "roles_plugin"}, {"roles_plugin": ALL_ROLES_PLUGIN})
    path = tmp_path / "voicekit.toml"
    path.write_text(ROLES_CONFIG.replace('[llm]\nprovider = "roles"', '[llm]\nprovider = "gpt"'))
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert "no llm provider named 'gpt'; installed llm providers: " in result.output
    listed = result.output.split("installed llm providers: ")[1].split(".")[0]
    assert "roles" in listed.split(", ")


def test_config_check_and_serve_refuse_a_telephony_server_without_public_url(
    tmp_path: Path, plugin_dist: PluginDistFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without [server] public_url the media URLs would have to come from a request's Host
    header, which anyone can set: both commands stop and say what to set."""
    plugin_dist("roles-dist", {"roles": "roles_plugin"}, {"roles_plugin": ALL_ROLES_PLUGIN})
    monkeypatch.setenv("ROLES_TTS_KEY", "xi-very-secret-key-123456")
    path = tmp_path / "voicekit.toml"
    path.write_text(ROLES_CONFIG.replace('public_url = "https://voice.example.com"\n', ""))
    for command in (["config", "check"], ["serve"]):
        result = CliRunner().invoke(cli, [*command, "--config", str(path)])
        assert result.exit_code == 2, result.output
        assert "server.public_url is not set: set [server] public_url" in result.output
        assert "VOICEKIT_SERVER__PUBLIC_URL" in result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "url", ["voice.example.com", "ftp://voice.example.com", "https://x.example/?token=1"]
)
def test_public_url_must_be_a_plain_http_url(tmp_path: Path, url: str) -> None:
    path = tmp_path / "voicekit.toml"
    path.write_text(f'[server]\npublic_url = "{url}"\n')
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2 and "server.public_url" in result.output, result.output


def test_config_check_bad_value_exits_nonzero_naming_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "voicekit.toml"
    path.write_text('[server]\nport = "eighty"\n')
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert f"{path}: server.port input should be a valid integer" in result.output
    assert "Traceback" not in result.output


def test_config_check_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "voicekit.toml"
    path.write_text("[server\n")
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2 and "line 1, column 8" in result.output


def test_config_check_warns_about_a_plain_http_public_url(tmp_path: Path) -> None:
    path = tmp_path / "voicekit.toml"
    path.write_text('[server]\npublic_url = "http://voice.example.com"\n')
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert "warning: server.public_url is http://" in result.output
    path.write_text('[server]\npublic_url = "http://127.0.0.1:8080"\n')  # local testing: fine
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert "warning" not in result.output


def test_config_check_refuses_a_telnyx_public_key_that_serve_would_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELNYX_PUBLIC_KEY", "notbase64")
    monkeypatch.setenv("TELNYX_API_KEY", "test-telnyx-key")
    path = tmp_path / "voicekit.toml"
    path.write_text(
        '[stt]\nprovider = "fake"\n[llm]\nprovider = "fake"\n[tts]\nprovider = "fake"\n'
        '[server]\npublic_url = "https://voice.example.com"\n'
    )
    for command in (["config", "check"], ["serve"]):
        result = CliRunner().invoke(cli, [*command, "--config", str(path)])
        assert result.exit_code == 2, result.output
        assert "providers.telnyx.public_key" in result.output
        assert "TELNYX_PUBLIC_KEY" in result.output and "notbase64" not in result.output


def test_config_check_warns_about_typos_it_would_otherwise_ignore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEKIT_AGNET__GREETING", "Hi")
    path = tmp_path / "voicekit.toml"
    path.write_text(
        '[stt]\nprovider = "fake"\n[llm]\nprovider = "fake"\n[tts]\nprovider = "fake"\n'
        '[providers.elevenlabs]\nvoice_idd = "x"\n[providers.elevenlab]\nvoice_id = "x"\n'
    )
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    out = result.output
    assert (
        "warning: environment variable VOICEKIT_AGNET__GREETING: there is no section 'agnet' "
        "(did you mean 'agent'?)" in out
    )
    assert "warning: [providers.elevenlabs] voice_idd: not an option of elevenlabs " in out
    assert "(did you mean 'voice_id'?)" in out
    assert "warning: [providers.elevenlab]: no installed provider or plugin is named" in out


def test_a_table_for_a_plugin_without_providers_says_so(
    tmp_path: Path, plugin_dist: PluginDistFactory
) -> None:
    plugin_dist("quiet-dist", {"quiet": "quiet_plugin"}, {"quiet_plugin": "# no hooks yet\n"})
    path = tmp_path / "voicekit.toml"
    path.write_text('[providers.quiet]\nmodle = "x"\n')
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert "warning: [providers.quiet]: the 'quiet' plugin registers no provider" in result.output


def test_config_check_with_no_file_shows_the_offline_default_and_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("TELNYX_API_KEY", "TELNYX_PUBLIC_KEY"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(cli, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert 'provider = "local"' in result.stdout and 'provider = "none"' in result.stdout
    assert "front_desk.toml" in result.stdout  # [flow] file: the built-in front desk
    assert "the agent is the built-in front desk flow" in result.stderr
    assert "telephony 'telnyx' is not configured" in result.stderr
    # A telephony that is half set up is an error, as before.
    monkeypatch.setenv("TELNYX_API_KEY", "KEY-only")
    half = CliRunner().invoke(cli, ["config", "check"])
    assert half.exit_code == 2 and "TELNYX_PUBLIC_KEY" in half.output


def test_serve_without_telephony_points_to_simulate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("TELNYX_API_KEY", "TELNYX_PUBLIC_KEY"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2
    assert "TELNYX_API_KEY" in result.output and "run `voicekit simulate`" in result.output


def test_no_llm_with_prompt_nodes_is_refused_by_config_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flow.toml").write_text(
        'start = "a"\n[[nodes]]\nid = "a"\nprompt = "Ask how we can help."\n'
    )
    (tmp_path / "voicekit.toml").write_text('[flow]\nfile = "flow.toml"\n')
    result = CliRunner().invoke(cli, ["config", "check", "--config", "voicekit.toml"])
    assert result.exit_code == 2
    assert "node 'a': prompt: [llm] provider is \"none\"" in result.output
    (tmp_path / "voicekit.toml").write_text('[agent]\ninstructions = "Be nice."\n')
    alone = CliRunner().invoke(cli, ["config", "check", "--config", "voicekit.toml"])
    assert alone.exit_code == 2 and "nothing would answer the caller" in alone.output


def test_an_empty_telephony_key_in_the_environment_counts_as_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELNYX_API_KEY", "")
    monkeypatch.delenv("TELNYX_PUBLIC_KEY", raising=False)
    result = CliRunner().invoke(cli, ["config", "check"])
    assert result.exit_code == 2 and "TELNYX_PUBLIC_KEY" in result.output


def test_say_with_nothing_to_say_is_an_error(tmp_path: Path) -> None:
    from voicekit.cli import commands  # noqa: F401  (registers the subcommands)

    for text in ("", " ", "..."):
        result = CliRunner().invoke(cli, ["say", text, "--out", str(tmp_path / "x.wav")])
        assert result.exit_code == 2 and "has no word to say" in result.stderr
    assert not (tmp_path / "x.wav").exists()
