"""The one exception tree of voicekit.

Every error voicekit raises on purpose derives from :class:`VoiceKitError`, so an
application can catch everything of ours with one ``except`` and let real bugs through::

    VoiceKitError
    ├── ConfigError            a setting is missing or wrong; names the field and the fix
    ├── PluginError            a plugin failed to load, clashed with another, or lacks its extra
    │   └── ProviderNotFoundError   no provider of that kind and name is registered
    ├── AudioFormatError       audio bytes or formats that cannot be processed
    ├── CallRefused            the server cannot take another call (draining, max_calls)
    └── ProviderError          a provider (STT, LLM, TTS, telephony) failed
        ├── ProviderAuthError       the provider refused our credentials (never retryable)
        ├── RateLimited             429: retryable, after ``retry_after`` when it said
        ├── ProviderUnavailable     5xx, 408, or the network: retryable
        └── ProviderTimeoutError    the provider did not answer in time (retryable)

:mod:`voicekit.provider_errors` maps what a provider answered (an HTTP status, a failed
WebSocket handshake, a network error, an SDK's exception) onto this tree, once for every
plugin.

``ProviderError`` carries ``retryable`` and ``status_code`` because the core, not each
plugin, owns the retry policy (DESIGN.md §8): a plugin states what happened, the core
decides whether trying again can help.
"""

from __future__ import annotations

__all__ = [
    "AudioFormatError",
    "CallRefused",
    "ConfigError",
    "PluginError",
    "ProviderAuthError",
    "ProviderError",
    "ProviderNotFoundError",
    "ProviderTimeoutError",
    "ProviderUnavailable",
    "RateLimited",
    "VoiceKitError",
]


class VoiceKitError(Exception):
    """Base of every error voicekit raises deliberately."""


class ConfigError(VoiceKitError):
    """A setting is invalid or missing.

    The message always names where the value came from (file, variable or argument),
    the field, and what would be accepted.
    """


class PluginError(VoiceKitError):
    """A plugin could not be loaded or used (import failure, name clash, missing extra)."""


class ProviderNotFoundError(PluginError):
    """No provider of the requested kind and name is registered."""


class AudioFormatError(VoiceKitError, ValueError):
    """Audio that cannot be processed: odd-length PCM, an unsupported encoding or rate."""


class CallRefused(VoiceKitError):
    """The server cannot take another call: it is draining, or ``max_calls`` are live."""


class ProviderError(VoiceKitError):
    """A provider failed.

    ``retryable`` says whether the same request may succeed if tried again (timeouts,
    rate limits, 5xx); ``status_code`` is the provider's own code when it gave one
    (HTTP status, WebSocket close code or an error code in a message body).
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        retryable: bool = False,
        status_code: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after  # seconds the provider asked us to wait, if it did
        self.code = code  # the provider's own error code, when it has one

    def __str__(self) -> str:
        text = super().__str__()
        prefix = f"[{self.provider}] " if self.provider else ""
        status = self.status_code
        suffix = (
            f" (status {status})" if status is not None and f"HTTP {status}" not in text else ""
        )
        return f"{prefix}{text}{suffix}"


class ProviderAuthError(ProviderError):
    """The provider refused the credentials. Retrying with the same key cannot help."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(
            message, provider=provider, retryable=False, status_code=status_code, code=code
        )


class _Retryable(ProviderError):
    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(
            message,
            provider=provider,
            retryable=True,
            status_code=status_code,
            retry_after=retry_after,
            code=code,
        )


class RateLimited(_Retryable):
    """The provider is rate limiting us (HTTP 429): retryable, after ``retry_after``."""


class ProviderUnavailable(_Retryable):
    """The provider is down or unreachable (5xx, 408, network): retryable."""


class ProviderTimeoutError(ProviderError):
    """The provider did not answer within its timeout."""

    def __init__(
        self, message: str, *, provider: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message, provider=provider, retryable=True, status_code=status_code)
