"""voicekit plugin `telnyx`: Telnyx telephony: Call Control v2, signed webhooks and the
bidirectional media-stream WebSocket.

Loaded through the entry point `telnyx` of group `voicekit`, exactly like a third-party
plugin. Provider classes are registered here with `voicekit.hookimpl`; their third-party
SDKs are imported lazily inside the providers, so this module always imports and
`voicekit plugins` can say which extra is missing. The providers themselves arrive with
their issues (see the project issue tracker); until then the plugin registers none.
"""
