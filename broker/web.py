"""Serve the three web surfaces as static files: no build step, no templates, no inline code.

``/`` and ``/j`` are the customer page (the join link carries the code in its fragment, which
browsers never send to a server), ``/console`` the engineers' console, ``/audit`` the security
review. Scripts and styles come from ``/static/``; the CSP in ``broker.api.middleware`` forbids
inline scripts, so every page is a plain HTML file plus ES modules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"

PAGES = {
    "/": "customer.html",
    "/j": "customer.html",
    "/console": "console.html",
    "/audit": "audit.html",
}


def _page(filename: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def serve(request: web.Request) -> web.StreamResponse:
        path = WEB_ROOT / filename
        if not path.is_file():
            raise web.HTTPNotFound(reason=f"{filename} is not installed")
        return web.FileResponse(path, headers={"Content-Type": "text/html; charset=utf-8"})

    serve.__name__ = f"page_{filename.split('.')[0]}"
    return serve


def add_web_routes(app: web.Application) -> None:
    for route, filename in PAGES.items():
        app.router.add_get(route, _page(filename))
    if WEB_ROOT.is_dir():
        app.router.add_static("/static/", WEB_ROOT, follow_symlinks=False)
