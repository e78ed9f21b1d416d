"""The broker's clock as a type: services and relay rooms are handed one, never read the time.

It lives apart from ``appkeys`` (which imports aiohttp) so that the service layer can name it
without importing the web layer; the alias once sat in ``appkeys`` and tied ``appkeys``,
``services``, ``auth/service`` and the session services into an import circle (issue 12).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

Clock = Callable[[], datetime]
"""Returns the current instant, timezone-aware UTC; tests pass a clock they move by hand."""
