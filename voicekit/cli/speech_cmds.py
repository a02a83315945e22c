"""``voicekit say`` and ``voicekit transcribe``: the configured TTS and STT on files."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import click

from voicekit.audio import AudioConverter, AudioFormat, Framer, read_wav, write_wav
from voicekit.audio.wav import first_channel
from voicekit.cli.main import cli, config_option, reports_errors
from voicekit.config import load_settings
from voicekit.config.resolve import create_provider
from voicekit.errors import ConfigError
from voicekit.session.negotiate import choose_format
from voicekit.stt import STT, EndOfTurn, Transcript
from voicekit.tts import TTS

FILE_RATE = 24000  # the PCM rate preferred for files: good speech quality, small


def _file_format(offered: tuple[AudioFormat, ...]) -> AudioFormat:
    pcm = [f for f in offered if f.encoding == "pcm_s16le"]
    if not pcm:
        return offered[0]
    return min(pcm, key=lambda f: (abs(f.sample_rate - FILE_RATE), -f.sample_rate))


async def _say(tts: TTS, text: str, out: Path) -> None:
    fmt = _file_format(tts.output_formats)
    started = time.perf_counter()
    first: float | None = None
    audio = bytearray()
    async with tts, tts.session(fmt, call_id="say") as session:
        utterance = session.utterance()
        await utterance.push_text(text.strip() + " ")
        await utterance.end()
        async for chunk in utterance:
            first = first or time.perf_counter()
            audio += chunk.data
    pcm_fmt = AudioFormat("pcm_s16le", fmt.sample_rate, fmt.channels)
    pcm = AudioConverter(fmt, pcm_fmt).process(bytes(audio))
    write_wav(out, pcm_fmt, pcm)
    first_ms = (first - started) * 1000 if first else float("nan")
    click.echo(
        f"wrote {out}: {pcm_fmt.duration_ms(len(pcm)) / 1000:.2f} s of {pcm_fmt} "
        f"(first audio after {first_ms:.0f} ms)"
    )


@cli.command("say")
@click.argument("text")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="WAV file to write (16-bit PCM).",
)
@config_option
@reports_errors
def say_command(text: str, out: Path, config_path: str | None) -> None:
    """Synthesise TEXT with the configured TTS and write it to a WAV file."""
    if not any(ch.isalnum() for ch in text):
        raise ConfigError(f"TEXT ({text!r}) has no word to say")
    settings = load_settings(config_path)
    tts = create_provider(settings, "tts")
    assert isinstance(tts, TTS)
    anyio.run(_say, tts, text, out)


async def _transcribe(stt: STT, path: Path, speed: float) -> None:
    fmt, audio = read_wav(path)
    if fmt.channels > 1:  # a call recording: the caller is on the left
        click.echo(f"{path.name}: {fmt.channels} channels; transcribing the first (left)", err=True)
        fmt, audio = first_channel(fmt, audio)
    target = choose_format(fmt, stt.input_formats)
    converter = AudioConverter(fmt, target)
    framer = Framer(fmt, 20)
    frames = framer.push(audio)
    tail = framer.flush(pad=False)
    if tail:
        frames.append(tail)
    tail_silence = fmt.silence(1500)  # lets the STT find the end of the last turn
    frames += Framer(fmt, 20).push(tail_silence)
    turn: list[str] = []

    async with stt, stt.stream(target, call_id=f"transcribe-{path.stem}") as stream:

        async def read() -> None:
            async for event in stream:
                if isinstance(event, Transcript) and event.is_final:
                    turn.append(event.text)
                elif isinstance(event, EndOfTurn) and turn:
                    click.echo(" ".join(turn))
                    turn.clear()

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            start = anyio.current_time()
            for n, frame in enumerate(frames):
                await stream.send_audio(converter.process(frame))
                due = start + (n + 1) * 0.02 / speed
                await anyio.sleep(max(0.0, due - anyio.current_time()))
            await stream.finalize()
            await stream.aclose()
    if turn:
        click.echo(" ".join(turn))


@cli.command("transcribe")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--speed",
    type=click.FloatRange(0.1, 100.0),
    default=1.0,
    show_default=True,
    help="Send audio this many times faster than real time (some providers "
    "disconnect streams sent much faster).",
)
@config_option
@reports_errors
def transcribe_command(file: Path, speed: float, config_path: str | None) -> None:
    """Transcribe a WAV file (16-bit PCM, mu-law or A-law) with the configured STT.

    Prints one line per caller turn.
    """
    settings = load_settings(config_path)
    stt = create_provider(settings, "stt")
    assert isinstance(stt, STT)
    anyio.run(_transcribe, stt, file, speed)
