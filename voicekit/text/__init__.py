"""Text handling for speech: the streaming sentence segmenter and speech clean-up."""

from voicekit.text.cleanup import clean_segment
from voicekit.text.segmenter import SentenceSegmenter

__all__ = ["SentenceSegmenter", "clean_segment"]
