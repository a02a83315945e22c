"""``python -m voicekit`` runs the command line."""

from voicekit.cli import main

main()
