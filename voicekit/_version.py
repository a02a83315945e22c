"""The installed version of voicekit (from package metadata)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("voicekit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
