"""The frame buffer layout every stage shares: capture, change detection, encoding, painting."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["Frame"]

Frame = NDArray[np.uint8]
"""(H, W, 4) uint8 BGRA: a captured screen, a decoded region or the viewer's canvas."""
