"""voicekit plugin `elevenlabs`: ElevenLabs text-to-speech: the multi-stream-input WebSocket
(one connection per call, one context per utterance) and the REST streaming fallback.

Loaded through the entry point `elevenlabs` of group `voicekit`, exactly like a third-party
plugin. Provider classes are registered here with `voicekit.hookimpl`; their third-party
SDKs are imported lazily inside the providers, so this module always imports and
`voicekit plugins` can say which extra is missing. The providers themselves arrive with
their issues (see the project issue tracker); until then the plugin registers none.
"""
