"""QR codes of handoff links, drawn on the server with segno as an SVG in a data: URL.

The page shows it as an ``<img>``: an SVG loaded as an image runs no script, and the page's
CSP allows ``img-src data:``. It is drawn here rather than in the page so the page carries no
QR encoder of its own (segno is a maintained, dependency-free encoder).
"""

from __future__ import annotations

import segno

QR_SCALE = 4
"""Pixels per module in the SVG's own size (the page scales it)."""


def qr_data_url(text: str) -> str:
    """Encode ``text`` as a QR code (error correction M or better) in a ``data:`` URL.

    Args:
        text: What the code says, here a handoff link (at most a few dozen characters).

    Returns:
        ``data:image/svg+xml;...`` with a dark-on-light SVG and a quiet zone.
    """
    code = segno.make_qr(text, error="m")
    url: str = code.svg_data_uri(scale=QR_SCALE, dark="#000", light="#fff", border=4)
    return url
