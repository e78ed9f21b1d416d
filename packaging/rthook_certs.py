"""PyInstaller runtime hook of the single-file agent: a CA list where the system has none.

The bundled OpenSSL looks for CA certificates where it was built to (``/usr/lib/ssl`` on
Debian); on macOS, on Linux distributions that keep them elsewhere and on Windows that place
does not exist, and ``wss://`` to the broker would fail to verify. Then, and only then, the
agent trusts certifi's list bundled with it. A system store that exists is always used as it
is (a company's own CA stays trusted), and ``SSL_CERT_FILE``/``SSL_CERT_DIR`` set by the user
win over both. Windows also adds its own certificate store (``ssl.create_default_context``).
"""

from __future__ import annotations

import os
import ssl
import sys


def _has_system_certificates() -> bool:
    paths = ssl.get_default_verify_paths()
    if paths.cafile and os.path.isfile(paths.cafile):
        return True
    return bool(paths.capath and os.path.isdir(paths.capath) and os.listdir(paths.capath))


def _use_bundled_certificates() -> None:
    if "SSL_CERT_FILE" in os.environ or "SSL_CERT_DIR" in os.environ:
        return
    if _has_system_certificates():
        return
    bundled = os.path.join(getattr(sys, "_MEIPASS", ""), "certifi", "cacert.pem")
    if os.path.isfile(bundled):
        os.environ["SSL_CERT_FILE"] = bundled


_use_bundled_certificates()
