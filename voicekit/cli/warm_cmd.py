"""``voicekit flow warm``: fill the phrase cache with a call's known texts ahead of time."""

from __future__ import annotations

from pathlib import Path

import anyio
import click

from voicekit.audio import ALAW_8K, PCM_8K, PCM_16K, PCM_24K, ULAW_8K, AudioFormat
from voicekit.cli.flow_cmd import flow_group, settings_for_flow_commands
from voicekit.cli.main import config_option, reports_errors
from voicekit.config.resolve import create_provider
from voicekit.config.settings import VoiceKitSettings
from voicekit.errors import ConfigError, ProviderNotFoundError
from voicekit.flows import Flow, load_flow
from voicekit.flows.builtin import with_builtin_flow
from voicekit.flows.phrases import call_phrases
from voicekit.flows.runtime import flow_from_settings
from voicekit.phrases import PhraseCache
from voicekit.phrases.warm import warm_phrases
from voicekit.plugins import load_plugins
from voicekit.session.negotiate import choose_format
from voicekit.telephony import Telephony

# The telephone stream formats a call can use (Telnyx's codecs), by the name --format takes.
CALL_FORMATS: dict[str, AudioFormat] = {
    "pcmu": ULAW_8K,
    "pcma": ALAW_8K,
    "l16": PCM_16K,
    "l16-8000": PCM_8K,
    "l16-24000": PCM_24K,
}


def _configured_formats(settings: VoiceKitSettings) -> list[str]:
    """The --format names the configured telephony's calls use (pcmu when unknown)."""
    registry = load_plugins().registry
    name = settings.telephony.provider
    try:
        cls = registry.get("telephony", name)
        options = registry.options("telephony", name, settings.providers)
        formats = cls.stream_formats(options) if issubclass(cls, Telephony) else ()
    except (ProviderNotFoundError, ConfigError):
        formats = ()
    named = [n for n, f in CALL_FORMATS.items() if f in formats]
    return named or ["pcmu"]


@flow_group.command("warm")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@config_option
@click.option(
    "--format",
    "formats",
    type=click.Choice(sorted(CALL_FORMATS), case_sensitive=False),
    multiple=True,
    help="The calls' audio format (repeatable). Default: the configured telephony's "
    "codec ([providers.telnyx] codec; PCMU when unset).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache directory (default: [server] phrase_cache_dir).",
)
@click.option("--verbose", "-v", is_flag=True, help="List every phrase and what happened.")
@reports_errors
def flow_warm(
    file: Path | None,
    config_path: str | None,
    formats: tuple[str, ...],
    directory: Path | None,
    verbose: bool,
) -> None:
    """Synthesise the known texts of FILE (default: the config's [flow]; the built-in
    front desk when neither [flow] nor [agent] instructions is set) with the configured
    TTS into the phrase cache.

    Known texts are the flow's scripts, reprompts and apology that hold no caller or
    call detail, and [agent]'s apology, filler, farewell and [turn]'s idle prompts (and
    the greeting, when there is no flow). Each is synthesised once per voice and TTS
    format; a server with the same [server] phrase_cache_dir then plays them with no TTS
    round-trip. The config is --config, else $VOICEKIT_CONFIG, else ./voicekit.toml when
    there is one. Exits 1 if any phrase could not be synthesised or written.
    """
    settings, configured = settings_for_flow_commands(config_path)
    directory = directory or settings.server.phrase_cache_dir
    if directory is None:
        raise ConfigError(
            "no cache directory: set [server] phrase_cache_dir in the config "
            "(VOICEKIT_SERVER__PHRASE_CACHE_DIR) or pass --dir"
        )
    flow: Flow | None
    if file is not None:
        allowlist = settings.agent.transfer_allowlist if configured else None
        flow = load_flow(file, transfer_allowlist=allowlist)
    else:
        settings = with_builtin_flow(settings)
        flow = flow_from_settings(settings)
    texts = call_phrases(settings, flow)
    tts = create_provider(settings, "tts")
    cache = PhraseCache(directory)
    failed = 0

    async def run() -> None:
        nonlocal failed
        async with tts:
            for name in [f.lower() for f in formats] or _configured_formats(settings):
                fmt = choose_format(CALL_FORMATS[name], tts.output_formats)
                report = await warm_phrases(tts, fmt, texts, cache, settings.turn)
                click.echo(
                    f"{name} calls ({tts.name} audio in {fmt}): {len(texts)} phrases, "
                    f"{report.synthesised} synthesised ({report.audio_ms / 1000:.1f} s of "
                    f"audio), {report.already} already cached, {len(report.failed)} failed"
                )
                if verbose:
                    problems = dict(report.failed)
                    for text in texts:
                        click.echo(f"  {'FAILED' if text in problems else 'ok':6} {text}")
                for text, why in report.failed:
                    click.echo(f"  failed: {text[:60]!r}: {why}", err=True)
                failed += len(report.failed)

    anyio.run(run)
    click.echo(f"cache: {directory}")
    if failed:
        raise SystemExit(1)
