"""ElevenLabs ``output_format`` names for the raw formats voicekit can negotiate."""

from __future__ import annotations

from voicekit.audio import AudioFormat
from voicekit.errors import AudioFormatError

__all__ = ["OUTPUT_FORMATS", "output_format_name"]

# Preferred first: telephony codecs (zero transcoding on PCMU/PCMA calls), then PCM.
OUTPUT_FORMATS: dict[AudioFormat, str] = {
    AudioFormat("mulaw", 8000): "ulaw_8000",
    AudioFormat("alaw", 8000): "alaw_8000",
    AudioFormat("pcm_s16le", 16000): "pcm_16000",
    AudioFormat("pcm_s16le", 8000): "pcm_8000",
    AudioFormat("pcm_s16le", 22050): "pcm_22050",
    AudioFormat("pcm_s16le", 24000): "pcm_24000",
    AudioFormat("pcm_s16le", 44100): "pcm_44100",
}


def output_format_name(fmt: AudioFormat) -> str:
    try:
        return OUTPUT_FORMATS[fmt]
    except KeyError:
        offered = ", ".join(str(f) for f in OUTPUT_FORMATS)
        raise AudioFormatError(f"ElevenLabs cannot produce {fmt}; it offers {offered}") from None
