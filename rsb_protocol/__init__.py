"""Wire protocol of the remote-support broker: frames, control messages, E2E keys, read-back.

Pure code: no I/O, no clock, no aiohttp, no database. The broker imports only
``rsb_protocol.framing``; the agent and the tests use the rest (docs/protocol.md).
"""

PROTOCOL_VERSION = 1
"""Carried in every binary frame's first byte and every control message's ``"v"``."""
