"""voicekit plugin `local`: Offline providers: piper neural TTS and pocketsphinx STT, no
network and no keys.

Loaded through the entry point `local` of group `voicekit`, exactly like a third-party
plugin. Provider classes are registered here with `voicekit.hookimpl`; their third-party
SDKs are imported lazily inside the providers, so this module always imports and
`voicekit plugins` can say which extra is missing. The providers themselves arrive with
their issues (see the project issue tracker); until then the plugin registers none.
"""
