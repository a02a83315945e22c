"""What every provider class has in common: a name, a kind, a settings model.

A plugin registers provider *classes*; the core creates instances from configuration.
Keeping the settings model on the class lets the core validate a provider's options (and
name the bad field) before any connection is made.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, Literal, Self, cast

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.config import JsonDict
from typing_extensions import TypeVar

from voicekit.retry import RetryPolicy

__all__ = ["Provider", "ProviderKind", "ProviderSettings", "SettingsT", "credential"]

ProviderKind = Literal["stt", "llm", "tts", "telephony"]
PROVIDER_KINDS: tuple[ProviderKind, ...] = ("stt", "llm", "tts", "telephony")


class ProviderSettings(BaseModel):
    """Base of every provider's options (one ``[providers.<name>]`` table).

    Unknown keys are rejected, so a typo such as ``voice_idd`` is an error that names the
    field instead of a silently ignored setting.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for the provider.")
    retry_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Tries of a failed request (rate limit, outage), the first included.",
    )


SettingsT = TypeVar("SettingsT", bound=ProviderSettings, default=ProviderSettings)


def credential(env: str, *, description: str = "", required: bool = True) -> Any:
    """Declare a secret setting read from the conventional environment variable ``env``.

    The core fills it from ``env`` when the config file does not set it, and reports a
    missing value naming the variable. The value is a ``SecretStr``: it prints as
    ``**********`` and is never logged.
    """
    extra: JsonDict = {"env": env, "credential": True}
    if required:
        return Field(description=description or f"API key (env {env})", json_schema_extra=extra)
    return Field(
        default=None, description=description or f"API key (env {env})", json_schema_extra=extra
    )


class Provider(Generic[SettingsT]):
    """Base class of every provider (STT, LLM, TTS, telephony).

    Subclasses set ``name`` (what ``provider = "..."`` in the config selects) and
    ``Settings`` (a :class:`ProviderSettings` subclass), and name the same model as the
    type parameter, so ``self.settings`` is typed: ``class MyTTS(TTS[MySettings])``.
    Instances hold long-lived clients (HTTP pools, persistent connections); ``aclose``
    releases them.
    """

    kind: ClassVar[ProviderKind]
    name: ClassVar[str]
    Settings: ClassVar[type[ProviderSettings]] = ProviderSettings
    settings: SettingsT

    def __init__(self, settings: SettingsT | None = None) -> None:
        self.settings = settings if settings is not None else cast(SettingsT, self.Settings())

    @property
    def retry_policy(self) -> RetryPolicy:
        """How this provider's failed requests are retried (``retry_attempts`` option)."""
        return RetryPolicy(attempts=self.settings.retry_attempts)

    async def prepare(self) -> None:
        """Load now what the first call would otherwise wait for (a local model, say).
        The server awaits it before taking calls; the default does nothing."""

    async def aclose(self) -> None:
        """Release clients and connections. The default holds none."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def secret_value(value: SecretStr | None) -> str | None:
    """The plain text of a secret, for the one place that sends it to the provider."""
    return value.get_secret_value() if value is not None else None
