"""``voicekit simulate``: a whole call on this machine, with a transcript, a latency
waterfall per turn and a stereo recording."""

from voicekit.simulate.run import DEFAULT_LINES, SimulationResult, simulate
from voicekit.simulate.waterfall import waterfall

__all__ = ["DEFAULT_LINES", "SimulationResult", "simulate", "waterfall"]
