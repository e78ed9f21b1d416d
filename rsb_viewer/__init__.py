"""Engineer-side viewer: join a session, check the read-back words, watch and control the screen.

``ViewerClient`` is the asyncio client used by ``rsb view``, the tests and the benchmarks;
``ViewerSession`` is its sans-I/O core. Only the ``agent`` extra's libraries are needed, and
no broker or agent code: the update codec is the shared ``rsb_codec`` (docs/viewer.md).
"""

from rsb_viewer.client import (
    CLOSE_CODE_EXPLANATIONS,
    ViewerClient,
    ViewerClosed,
    ViewerConnectError,
    viewer_url,
)
from rsb_viewer.session import ViewerError, ViewerProtocolError, ViewerSession

__all__ = [
    "CLOSE_CODE_EXPLANATIONS",
    "ViewerClient",
    "ViewerClosed",
    "ViewerConnectError",
    "ViewerError",
    "ViewerProtocolError",
    "ViewerSession",
    "viewer_url",
]
