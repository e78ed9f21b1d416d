"""Wire protocol of the remote-support broker: frames, control messages, close codes, E2E keys,
read-back.

Pure code: no I/O, no clock, no aiohttp, no database (``wire_js`` renders the browser's copy of
the constants; only its command line writes a file). The broker never imports ``e2e``; the
agent, the viewer and the tests use the rest (docs/protocol.md).
"""

PROTOCOL_VERSION = 1
"""Carried in every binary frame's first byte and every control message's ``"v"``."""
