"""Format negotiation: pick the provider format that needs the least conversion.

When a provider speaks the call's format natively the bytes pass straight through (the
zero-transcode path); otherwise one in-process conversion is set up.
"""

from __future__ import annotations

from collections.abc import Sequence

from voicekit.audio import AudioFormat
from voicekit.errors import AudioFormatError

__all__ = ["choose_format"]


def choose_format(call_format: AudioFormat, offered: Sequence[AudioFormat]) -> AudioFormat:
    """The format needing the least work to meet the call's.

    In order: the call's own format (no conversion at all); PCM at the call's rate (one
    G.711 table lookup); any format at the call's rate (two lookups, no resampling);
    otherwise the provider's first preference (resampled in process).
    """
    if not offered:
        raise AudioFormatError("the provider offers no audio formats")
    if call_format in offered:
        return call_format
    same_rate = [f for f in offered if f.sample_rate == call_format.sample_rate]
    for fmt in same_rate:
        if fmt.encoding == "pcm_s16le":
            return fmt
    return same_rate[0] if same_rate else offered[0]
