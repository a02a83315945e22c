"""``voicekit simulate``: place a call to the agent on this machine and show how it went."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import click

from voicekit.audio import write_wav
from voicekit.cli.main import cli, config_option, reports_errors
from voicekit.config import load_settings
from voicekit.simulate import simulate, waterfall
from voicekit.simulate.run import record_json


@cli.command("simulate")
@config_option
@click.option(
    "--say",
    "lines",
    multiple=True,
    help="A caller line (repeatable): each is spoken once, in order, when the agent's "
    "turn before it is over.",
)
@click.option(
    "--wav",
    "wavs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A WAV file the caller plays, after the --say lines (repeatable); of a stereo "
    "file (a --record recording), the left channel.",
)
@click.option(
    "--record",
    "record_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the call as a stereo WAV: the caller left, the agent right.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the call record as JSON.")
@click.option(
    "--emulate",
    is_flag=True,
    help="Point the configured cloud providers (Soniox, ElevenLabs, OpenAI, Grok, "
    "Anthropic) at local emulators: no keys, no network.",
)
@reports_errors
def simulate_command(
    config_path: str | None,
    lines: tuple[str, ...],
    wavs: tuple[Path, ...],
    record_path: Path | None,
    as_json: bool,
    emulate: bool,
) -> None:
    """Call the agent from a simulated phone, on this machine, in real time.

    The server starts in this process on loopback with the configured providers (the
    offline defaults need no key and no network); the phone simulator calls it over
    the real Telnyx webhook and media-stream protocols and speaks the caller's lines,
    each after the agent's turn is over, then hangs up. Prints the live transcript, a
    latency waterfall per turn and how the call ended. With no --say or --wav, the
    caller walks the built-in front desk flow.
    """
    settings = load_settings(config_path)
    echo = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    result = anyio.run(
        lambda: simulate(
            settings,
            lines=list(lines),
            wavs=list(wavs),
            record=record_path is not None,
            emulate=emulate,
            out=echo,
        )
    )
    record = result.record
    assert record is not None
    caller_turns = [t for t in record.turns if t.user_text]
    echo("")
    echo("latency per turn (from the moment the caller stopped speaking):")
    for n, turn in enumerate(caller_turns):
        heard = result.heard_at[n] if n < len(result.heard_at) else None
        ttfa = f"{turn.ttfa_ms:.0f} ms" if turn.ttfa_ms is not None else "none"
        echo(f"turn {turn.turn_index}: {turn.user_text!r} -> TTFA {ttfa}")
        for line in waterfall(turn, heard):
            echo(line)
    echo(f"\ncall ended: {record.end_reason}, {len(record.turns)} agent turns")
    if record_path is not None and result.recording is not None:
        fmt, audio = result.recording.stereo()
        write_wav(record_path, fmt, audio)
        echo(
            f"recording: {record_path} ({fmt.duration_ms(len(audio)) / 1000:.1f} s, "
            "caller left, agent right)"
        )
    if as_json:
        json.dump(record_json(record), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
