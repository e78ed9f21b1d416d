"""Typed aiohttp application keys, one per shared resource."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from broker.clock import Clock

if TYPE_CHECKING:
    from broker.services import Services
    from broker.settings import Settings

SETTINGS_KEY: web.AppKey[Settings] = web.AppKey("settings")
SERVICES_KEY: web.AppKey[Services] = web.AppKey("services")
CLOCK_KEY: web.AppKey[Clock] = web.AppKey("clock")
