"""``voicekit flow warm``: fill the phrase cache with a flow's known texts ahead of time."""

from __future__ import annotations

from pathlib import Path

import anyio
import click

from voicekit.audio import ALAW_8K, PCM_8K, PCM_16K, PCM_24K, ULAW_8K, AudioFormat
from voicekit.cli.flow_cmd import flow_file, flow_group
from voicekit.cli.main import config_option, reports_errors
from voicekit.config import load_settings
from voicekit.config.resolve import create_provider
from voicekit.errors import ConfigError
from voicekit.flows import load_flow
from voicekit.flows.phrases import call_phrases
from voicekit.phrases import PhraseCache
from voicekit.phrases.warm import warm_phrases
from voicekit.session.negotiate import choose_format
from voicekit.text import SentenceSegmenter

# The telephone stream formats a call can use (Telnyx codecs), by the name --format takes.
CALL_FORMATS: dict[str, AudioFormat] = {
    "pcmu": ULAW_8K,
    "pcma": ALAW_8K,
    "l16": PCM_16K,
    "l16-8000": PCM_8K,
    "l16-24000": PCM_24K,
}


@flow_group.command("warm")
@flow_file
@config_option
@click.option(
    "--format",
    "formats",
    type=click.Choice(sorted(CALL_FORMATS)),
    multiple=True,
    help="The calls' audio format (repeatable). Default: pcmu, Telnyx's default codec; "
    'l16 for [providers.telnyx] codec = "L16".',
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache directory (default: [server] phrase_cache_dir).",
)
@reports_errors
def flow_warm(
    file: Path, config_path: str | None, formats: tuple[str, ...], directory: Path | None
) -> None:
    """Synthesise FILE's known texts with the configured TTS into the phrase cache.

    Known texts are the scripts, reprompts, apology and farewells that hold no caller
    or call detail, plus [agent]'s filler, farewell and [turn]'s idle prompts. Each is
    synthesised once per voice and format; a server with the same [server]
    phrase_cache_dir then plays them with no TTS round-trip. Exits 1 if any failed.
    """
    settings = load_settings(config_path)
    directory = directory or settings.server.phrase_cache_dir
    if directory is None:
        raise ConfigError(
            "no cache directory: set [server] phrase_cache_dir in the config "
            "(VOICEKIT_SERVER__PHRASE_CACHE_DIR) or pass --dir"
        )
    flow = load_flow(file, transfer_allowlist=settings.agent.transfer_allowlist)
    texts = call_phrases(settings, flow)
    tts = create_provider(settings, "tts")
    cache = PhraseCache(directory)
    turn = settings.turn

    def segmenter() -> SentenceSegmenter:
        return SentenceSegmenter(
            first_clause_min_chars=turn.first_clause_min_chars, max_chars=turn.max_segment_chars
        )

    failed = 0

    async def run() -> None:
        nonlocal failed
        async with tts:
            for name in formats or ("pcmu",):
                fmt = choose_format(CALL_FORMATS[name], tts.output_formats)
                report = await warm_phrases(tts, fmt, texts, cache, segmenter)
                click.echo(
                    f"{name} calls ({tts.name} audio in {fmt}): {len(texts)} phrases, "
                    f"{report.synthesised} synthesised ({report.audio_ms / 1000:.1f} s of "
                    f"audio), {report.already} already cached, {len(report.failed)} failed"
                )
                for text, why in report.failed:
                    click.echo(f"  failed: {text[:60]!r}: {why}", err=True)
                failed += len(report.failed)

    anyio.run(run)
    click.echo(f"cache: {directory}")
    if failed:
        raise SystemExit(1)
