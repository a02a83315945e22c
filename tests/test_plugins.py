"""Plugin discovery, the env allow/block lists, clashes, failures and missing extras."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from tests.conftest import PluginDistFactory
from voicekit import LLM, STT, ProviderSettings, credential
from voicekit.cli import cli
from voicekit.cli import commands as _commands  # noqa: F401  (registers subcommands)
from voicekit.errors import ConfigError, PluginError, ProviderNotFoundError
from voicekit.plugins import PluginManager, ProviderRegistry, load_plugins
from voicekit.plugins.registry import PluginInfo

STT_PLUGIN = """
from typing import ClassVar
import voicekit
from voicekit.stt import STT

class {cls}(STT):
    name: ClassVar[str] = "{name}"
    @property
    def input_formats(self):
        return (voicekit.ULAW_8K,)
    def stream(self, fmt, *, call_id=None):
        raise RuntimeError("not used in this test")

@voicekit.hookimpl
def register_stt(register):
    register({cls})
"""

FIRST_PARTY = {"anthropic", "elevenlabs", "grok", "local", "openai", "soniox", "telnyx"}


def test_first_party_plugins_are_discovered_through_entry_points() -> None:
    manager = load_plugins({})
    assert FIRST_PARTY <= set(manager.plugins)
    for name in FIRST_PARTY:
        info = manager.plugins[name]
        assert info.ok, info.error
        assert info.distribution == "voicekit" and info.version


def test_allowlist_empty_loads_none_and_blocklist_skips(plugin_dist: PluginDistFactory) -> None:
    plugin_dist(
        "acme-stt",
        {"acme": "acme_stt"},
        {"acme_stt": STT_PLUGIN.format(cls="AcmeSTT", name="acme")},
    )
    assert load_plugins({"VOICEKIT_LOAD_PLUGINS": ""}).plugins == {}
    only = load_plugins({"VOICEKIT_LOAD_PLUGINS": "acme, openai"})
    assert set(only.plugins) == {"acme", "openai"}
    assert only.registry.names("stt") == ["acme"]
    blocked = load_plugins({"VOICEKIT_BLOCK_PLUGINS": "acme"})
    assert "acme" not in blocked.plugins and FIRST_PARTY <= set(blocked.plugins)


def test_third_party_provider_is_attributed_to_its_distribution(
    plugin_dist: PluginDistFactory,
) -> None:
    plugin_dist(
        "acme-stt",
        {"acme": "acme_stt"},
        {"acme_stt": STT_PLUGIN.format(cls="AcmeSTT", name="acme")},
        version="2.3",
    )
    manager = load_plugins({})
    reg = manager.registry.registration("stt", "acme")
    assert reg.plugin.distribution == "acme-stt" and reg.plugin.version == "2.3"
    assert manager.plugins["acme"].providers == [("stt", "acme")]


def test_metadata_that_cannot_be_read_is_that_plugins_error_not_everyones(
    plugin_dist: PluginDistFactory,
) -> None:
    site = plugin_dist(
        "odd-marker",
        {"oddmarker": "odd_marker"},
        {"odd_marker": STT_PLUGIN.format(cls="OddSTT", name="odd")},
        requires=['requests; python_version ~= "abc"'],  # packaging cannot compare it
    )
    plugin_dist(
        "acme-stt",
        {"acme": "acme_stt"},
        {"acme_stt": STT_PLUGIN.format(cls="AcmeSTT", name="acme")},
    )
    bad_bytes = site / "bad_bytes-1.0.dist-info"
    bad_bytes.mkdir()
    (bad_bytes / "METADATA").write_bytes(b"Metadata-Version: 2.1\nName: bad\xff\xfe\nVersion: 1\n")
    (bad_bytes / "entry_points.txt").write_text("[voicekit]\nbadbytes = acme_stt\n")
    manager = load_plugins({})
    for name in ("oddmarker", "badbytes"):
        error = manager.plugins[name].error
        assert error is not None and error.startswith("unreadable package metadata"), name
    assert manager.registry.names("stt").count("acme") == 1 and FIRST_PARTY <= set(manager.plugins)


def test_import_failure_is_reported_and_others_still_load(plugin_dist: PluginDistFactory) -> None:
    plugin_dist(
        "broken", {"broken": "broken_plugin"}, {"broken_plugin": "import does_not_exist_anywhere\n"}
    )
    plugin_dist(
        "acme-stt",
        {"acme": "acme_stt"},
        {"acme_stt": STT_PLUGIN.format(cls="AcmeSTT", name="acme")},
    )
    manager = load_plugins({})
    assert "ModuleNotFoundError" in (manager.plugins["broken"].error or "")
    assert {"acme", "soniox"} <= set(manager.registry.names("stt"))


def test_register_hook_failure_is_reported_against_that_plugin(
    plugin_dist: PluginDistFactory,
) -> None:
    source = "import voicekit\n@voicekit.hookimpl\ndef register_llm(register):\n    raise KeyError('boom')\n"
    plugin_dist("bad-reg", {"badreg": "badreg_plugin"}, {"badreg_plugin": source})
    manager = load_plugins({})
    assert "register_llm failed: KeyError" in (manager.plugins["badreg"].error or "")
    assert manager.plugins["openai"].ok


def test_same_name_from_two_plugins_is_an_error_naming_both(plugin_dist: PluginDistFactory) -> None:
    plugin_dist(
        "one", {"one": "one_plugin"}, {"one_plugin": STT_PLUGIN.format(cls="OneSTT", name="dup")}
    )
    plugin_dist(
        "two", {"two": "two_plugin"}, {"two_plugin": STT_PLUGIN.format(cls="TwoSTT", name="dup")}
    )
    with pytest.raises(PluginError) as err:
        load_plugins({})
    message = str(err.value)
    assert "'dup'" in message and "'one'" in message and "'two'" in message
    assert "VOICEKIT_BLOCK_PLUGINS" in message
    # Blocking one of them resolves the clash.
    assert "dup" in load_plugins({"VOICEKIT_BLOCK_PLUGINS": "two"}).registry.names("stt")


def test_a_misspelt_hook_unloads_that_plugin_only(plugin_dist: PluginDistFactory) -> None:
    """One plugin's typo must not stop every command: it is listed with its error (named
    by its entry point, with the fix), and the other plugins still load and work."""
    source = "import voicekit\n@voicekit.hookimpl\ndef register_ttts(register):\n    pass\n"
    plugin_dist("typo", {"typo": "typo_plugin"}, {"typo_plugin": source})
    manager = load_plugins({})
    info = manager.plugins["typo"]
    assert info.error == (
        "implements register_ttts, which is not a voicekit hook (did you mean register_tts?); "
        "fix the plugin, or skip it with VOICEKIT_BLOCK_PLUGINS=typo "
        "(docs/plugins.md lists the hooks)"
    )
    assert manager.pm.get_plugin("typo") is None
    assert "elevenlabs" in manager.registry.names("tts")  # the others are untouched
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "register_ttts" in result.output and "VOICEKIT_BLOCK_PLUGINS=typo" in result.output


def test_missing_extra_is_detected_with_install_hint(plugin_dist: PluginDistFactory) -> None:
    plugin_dist(
        "acme-stt",
        {"acme": "acme_stt"},
        {"acme_stt": STT_PLUGIN.format(cls="AcmeSTT", name="acme")},
        extras=["acme"],
        requires=[
            "numpy>=1",
            'no-such-sdk-package>=2 ; extra == "acme"',
            'other-missing ; extra == "unrelated"',
        ],
    )
    manager = load_plugins({})
    info = manager.plugins["acme"]
    assert info.missing == ["no-such-sdk-package>=2"]
    assert info.install_hint == 'pip install "acme-stt[acme]"'
    with pytest.raises(PluginError, match=r'pip install "acme-stt\[acme\]"'):
        manager.registry.create("stt", "acme")


# -- registry -----------------------------------------------------------------------------


class KeyedSettings(ProviderSettings):
    api_key: SecretStr = credential("ACME_API_KEY")
    voice: str = "alloy"
    speed: float = 1.0


class KeyedLLM(LLM):
    name: ClassVar[str] = "keyed"
    Settings: ClassVar[type[ProviderSettings]] = KeyedSettings

    async def stream(self, messages, *, tools=None, max_tokens=None, temperature=None):  # type: ignore[no-untyped-def,override]
        yield  # pragma: no cover


def _registry() -> ProviderRegistry:
    reg = ProviderRegistry()
    reg.add("llm", KeyedLLM, PluginInfo(name="test", module=__name__))
    return reg


def test_unknown_provider_lists_installed_ones() -> None:
    with pytest.raises(
        ProviderNotFoundError, match=r"no llm provider named 'nope'; installed llm providers: keyed"
    ):
        _registry().get("llm", "nope")


def test_settings_errors_name_provider_and_field() -> None:
    with pytest.raises(ConfigError) as err:
        _registry().settings(
            "llm", "keyed", {"api_key": "x", "speed": "fast", "voise": "a"}, environ={}
        )
    text = str(err.value)
    assert "llm provider 'keyed'" in text
    assert "providers.keyed.speed" in text and "valid number" in text
    assert "providers.keyed.voise is not a known option" in text and "known options:" in text


def test_missing_credential_names_the_variable() -> None:
    with pytest.raises(
        ConfigError,
        match=r"providers.keyed.api_key is required: set the environment variable ACME_API_KEY",
    ):
        _registry().settings("llm", "keyed", {}, environ={})


def test_credential_comes_from_its_conventional_variable() -> None:
    settings = _registry().settings("llm", "keyed", {}, environ={"ACME_API_KEY": "sk-secret-123"})
    assert "sk-secret-123" not in repr(settings) and "sk-secret-123" not in str(settings)
    assert settings.api_key.get_secret_value() == "sk-secret-123"  # type: ignore[attr-defined]


def test_registering_a_wrong_class_is_an_error() -> None:
    reg = ProviderRegistry()
    info = PluginInfo(name="p", module="m")
    with pytest.raises(PluginError, match=r"not a subclass of voicekit\.STT"):
        reg.add("stt", KeyedLLM, info)

    class Nameless(LLM):
        async def stream(self, messages, **kw):  # type: ignore[no-untyped-def,override]
            yield  # pragma: no cover

    with pytest.raises(PluginError, match="non-empty class attribute `name`"):
        reg.add("llm", Nameless, info)


def test_credential_must_be_a_secret() -> None:
    class LeakySettings(ProviderSettings):
        api_key: str = credential("LEAKY_KEY")

    class LeakyLLM(KeyedLLM):
        name: ClassVar[str] = "leaky"
        Settings: ClassVar[type[ProviderSettings]] = LeakySettings

    with pytest.raises(PluginError, match="must be SecretStr"):
        ProviderRegistry().add("llm", LeakyLLM, PluginInfo(name="p", module="m"))


def test_programmatic_registration() -> None:
    import types

    import voicekit

    module = types.ModuleType("inline_plugin")

    @voicekit.hookimpl
    def register_llm(register):  # type: ignore[no-untyped-def]
        register(KeyedLLM)

    module.register_llm = register_llm  # type: ignore[attr-defined]
    manager = PluginManager()
    manager.register(module, "inline")
    manager.collect_providers()
    assert manager.registry.names("llm") == ["keyed"]
    assert isinstance(
        manager.registry.create("llm", "keyed", {"api_key": "k"}, environ={}), KeyedLLM
    )


def test_lifecycle_hooks_reach_plugins() -> None:
    import types

    import voicekit
    from voicekit import CallInfo

    seen: list[str] = []
    module = types.ModuleType("observer")

    @voicekit.hookimpl
    def call_started(call):  # type: ignore[no-untyped-def]
        seen.append(call.call_id)

    module.call_started = call_started  # type: ignore[attr-defined]
    manager = PluginManager()
    manager.register(module, "observer")
    manager.hook.call_started(call=CallInfo(call_id="c-1"))
    assert seen == ["c-1"]


def test_one_table_feeds_every_role_of_a_name() -> None:
    class SttOpts(ProviderSettings):
        model: str = "small"

    class TtsOpts(ProviderSettings):
        voice: str = "joe"

    class LocalSTT(STT):
        name: ClassVar[str] = "local"
        Settings: ClassVar[type[ProviderSettings]] = SttOpts
        input_formats = ()  # type: ignore[assignment]

        def stream(self, fmt, *, call_id=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("unused")

    from voicekit import TTS

    class LocalTTS(TTS):
        name: ClassVar[str] = "local"
        Settings: ClassVar[type[ProviderSettings]] = TtsOpts
        output_formats = ()  # type: ignore[assignment]

        def session(self, fmt, *, call_id=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("unused")

    reg = ProviderRegistry()
    info = PluginInfo(name="local", module="m")
    reg.add("stt", LocalSTT, info)
    reg.add("tts", LocalTTS, info)
    table = {"model": "large", "voice": "amy", "timeout": 3, "tts": {"voice": "joe2"}}
    assert reg.options_for("stt", "local", table) == {"model": "large", "timeout": 3}
    assert reg.options_for("tts", "local", table) == {"voice": "joe2", "timeout": 3}
    with pytest.raises(ConfigError, match=r"providers\.local\.colour is not a known option"):
        reg.settings("tts", "local", reg.options_for("tts", "local", {"colour": "red"}))


def test_install_hints_work_from_a_checkout_as_from_pypi(tmp_path: Path) -> None:
    from importlib import metadata

    from voicekit.plugins.manager import install_command

    info = tmp_path / "acme-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme\nVersion: 1.0\n")
    dist = metadata.PathDistribution(info)
    assert install_command(dist, "acme") == 'pip install "acme[acme]"'
    (info / "direct_url.json").write_text(
        '{"dir_info": {"editable": true}, "url": "file:///src/acme"}'
    )
    assert install_command(dist, "acme") == 'pip install -e "/src/acme[acme]"'
    assert install_command(dist, None) == 'pip install -e "/src/acme"'


TOOL_PLUGIN = """
import voicekit

@voicekit.tool(description="Opening hours on a day.")
async def {name}(day: str) -> str:
    return "9 to 5"

@voicekit.hookimpl
def register_tools(register):
    register({name})
"""


def test_a_plugins_tools_are_listed_and_offered_in_every_call(
    plugin_dist: PluginDistFactory,
) -> None:
    from voicekit_telnyx import TelnyxTelephony
    from voicekit_telnyx.settings import TelnyxSettings

    import voicekit

    plugin_dist(
        "acme-tools", {"acmetools": "acme_tools"}, {"acme_tools": TOOL_PLUGIN.format(name="hours")}
    )
    manager = load_plugins({})
    assert manager.plugins["acmetools"].tools == ["hours"]
    assert list(manager.tools) == ["hours"]
    listing = CliRunner().invoke(cli, ["plugins"], env={"VOICEKIT_LOAD_PLUGINS": "acmetools"})
    assert "tool:hours" in listing.output
    settings = voicekit.load_settings(
        stt={"provider": "fake"},
        llm={"provider": "fake"},
        tts={"provider": "fake"},
        server={"public_url": "https://voice.example.com"},
    )
    telephony = TelnyxTelephony(TelnyxSettings(api_key="k", public_key="A" * 43 + "="))

    @voicekit.tool(description="The weather.")
    async def weather(city: str) -> str:
        return "sunny"

    app = voicekit.create_app(settings, plugins=manager, telephony=telephony, tools=[weather])
    assert [t.name for t in app.app.state.calls.tools] == ["weather", "hours"]
    with pytest.raises(ConfigError, match="two tools are named 'hours'") as clash:
        voicekit.create_app(settings, plugins=manager, telephony=telephony, tools=[hours_too()])
    assert "create_app(tools=...) and plugin 'acmetools'" in str(clash.value)
    with_builtin = settings.model_copy(
        update={"agent": settings.agent.model_copy(update={"builtin_tools": ["end_call"]})}
    )

    @voicekit.tool(name="end_call", description="Mine.")
    async def mine() -> str:
        return ""

    with pytest.raises(ConfigError, match=r"'end_call' \(create_app\(tools=...\) and \[agent\]"):
        voicekit.create_app(with_builtin, plugins=manager, telephony=telephony, tools=[mine])


def hours_too() -> object:
    import voicekit

    @voicekit.tool(description="Another.")
    async def hours() -> str:
        return ""

    return hours


def test_a_tool_name_taken_by_a_builtin_or_another_plugin_is_reported_on_that_plugin(
    plugin_dist: PluginDistFactory,
) -> None:
    """The clash is the second plugin's error, naming both; `voicekit plugins` still
    lists everything, and the other plugins' tools are used."""
    plugin_dist("t-one", {"tone": "t_one"}, {"t_one": TOOL_PLUGIN.format(name="hours")})
    plugin_dist("t-two", {"ttwo": "t_two"}, {"t_two": TOOL_PLUGIN.format(name="hours")})
    plugin_dist("t-three", {"tthree": "t_three"}, {"t_three": TOOL_PLUGIN.format(name="end_call")})
    manager = load_plugins({})
    assert manager.plugins["tone"].ok and list(manager.tools) == ["hours"]
    two, three = manager.plugins["ttwo"], manager.plugins["tthree"]
    assert "'hours'" in (two.error or "") and "plugin 'tone'" in (two.error or "")
    assert "VOICEKIT_BLOCK_PLUGINS" in (two.error or "") and two.tools == []
    assert "built-in" in (three.error or "")
    listing = CliRunner().invoke(cli, ["plugins"])
    assert listing.exit_code == 0 and "tool:hours" in listing.output
    assert "ERROR register_tools failed: registered a tool named 'end_call'" in listing.output
