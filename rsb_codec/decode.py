"""Paint a parsed update onto a frame buffer: the viewer's half of the codec, and the tests'.

A frame buffer (`rsb_codec.frame.Frame`) is an (H, W, 4) uint8 BGRA array, as the agent
captures it. Each region's image is checked against the region's size before any pixel is
decoded, so a small payload cannot make the viewer allocate a huge image.
"""

from __future__ import annotations

import io

import numpy as np
import simplejpeg
from PIL import Image

from rsb_codec.frame import Frame
from rsb_codec.wire import Region, Update

__all__ = ["apply_update", "decode_region"]


def decode_region(region: Region) -> Frame:
    """Decode one region's image to an (h, w, 4) BGRA array (viewer side and tests).

    The image header is checked against the region's size before any pixel is decoded, so a
    small payload cannot claim a huge image.

    Raises:
        ValueError: The image does not decode or its size differs from the region's.
    """
    try:
        if region.codec == "jpeg":
            size = simplejpeg.decode_jpeg_header(region.data)[1::-1]
            _check_size(region, size)
            pixels: Frame = simplejpeg.decode_jpeg(region.data, colorspace="BGRA")
        else:
            with Image.open(io.BytesIO(region.data), formats=[region.codec.upper()]) as img:
                _check_size(region, img.size)
                rgb = np.asarray(img.convert("RGB"))
            pixels = np.empty((region.h, region.w, 4), dtype=np.uint8)
            pixels[..., :3] = rgb[..., ::-1]
            pixels[..., 3] = 255
    except (OSError, RuntimeError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{region.codec} region does not decode: {exc}") from exc
    return pixels


def _check_size(region: Region, size: tuple[int, int]) -> None:
    if tuple(size) != (region.w, region.h):
        raise ValueError(f"image is {size[0]}x{size[1]}, region is {region.w}x{region.h}")


def apply_update(canvas: Frame, update: Update) -> None:
    """Paint every region of `update` onto `canvas`, an (H, W, 4) BGRA array, in place.

    Raises:
        ValueError: The canvas size differs from the update's, or a region does not decode.
    """
    if canvas.shape[:2] != (update.height, update.width):
        raise ValueError(f"canvas {canvas.shape[1]}x{canvas.shape[0]} does not match update")
    for region in update.regions:
        canvas[region.y : region.y + region.h, region.x : region.x + region.w] = decode_region(
            region
        )
