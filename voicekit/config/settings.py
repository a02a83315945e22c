"""Top-level settings and the precedence rules.

Precedence, highest first: arguments > environment (``VOICEKIT_<SECTION>__<FIELD>``) >
``voicekit.toml`` (path from ``--config`` or ``VOICEKIT_CONFIG``) > defaults.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from pydantic import Field
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from voicekit.config.sections import (
    AgentSettings,
    FlowSettings,
    ProviderChoice,
    ServerSettings,
    TurnSettings,
)

__all__ = ["ENV_PREFIX", "NO_LLM", "VoiceKitSettings"]

ENV_PREFIX = "VOICEKIT_"
NO_LLM = "none"  # [llm] provider: no LLM at all
# The parsed TOML document for the settings being built; set by voicekit.config.load_settings.
_file_data: ContextVar[dict[str, Any] | None] = ContextVar("voicekit_file_data", default=None)


class _FileSource(PydanticBaseSettingsSource):
    """Values from the already-parsed TOML file (parsed by the loader for good errors)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        data = _file_data.get() or {}
        return data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        data = _file_data.get() or {}
        return {k: v for k, v in data.items() if k in self.settings_cls.model_fields}


class VoiceKitSettings(BaseSettings):
    """Everything voicekit is configured with. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        nested_model_default_partial_update=True,
    )

    agent: AgentSettings = Field(default_factory=AgentSettings)
    stt: ProviderChoice = Field(default_factory=lambda: ProviderChoice(provider="local"))
    # "none": no LLM; a flow's scripts and keywords answer (the built-in front desk).
    llm: ProviderChoice = Field(default_factory=lambda: ProviderChoice(provider=NO_LLM))
    tts: ProviderChoice = Field(default_factory=lambda: ProviderChoice(provider="local"))
    telephony: ProviderChoice = Field(default_factory=lambda: ProviderChoice(provider="telnyx"))
    turn: TurnSettings = Field(default_factory=TurnSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    flow: FlowSettings = Field(default_factory=FlowSettings)
    providers: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Options of each provider, one table per name."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls))

    def provider_options(self, name: str) -> dict[str, Any]:
        """The ``[providers.<name>]`` table (empty when absent)."""
        return dict(self.providers.get(name, {}))
