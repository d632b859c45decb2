"""Images out: pixel grids for PNG files and pictures.

Generated images are (N, C, H, W) in [-1, 1], the range networks use; a grid is uint8
(rows, cols, C) with one pixel of padding between images, which is what a PNG holds and
what a report shows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import BinaryIO

import numpy as np

#: Grey between the images of a grid (mid-range, so black and white digits both stand out).
PAD_VALUE = 128


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Pixels in [-1, 1] to 0..255 (rounded, clipped)."""
    return np.clip(np.rint((np.asarray(images, dtype=np.float64) + 1) * 127.5), 0, 255).astype(np.uint8)


def tile(images: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """(N, C, H, W) images in [-1, 1] as one uint8 grid (rows, cols, C), row by row;
    `cols` defaults to the smallest square that holds them."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"tile needs images (N, C, H, W), got shape {images.shape}")
    n, c, h, w = images.shape
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), PAD_VALUE, dtype=np.uint8)
    pixels = to_uint8(images).transpose(0, 2, 3, 1)
    for i in range(n):
        top, left = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        grid[top: top + h, left: left + w] = pixels[i]
    return grid


def write_png(path: Path | BinaryIO, grid: np.ndarray) -> None:
    """Write a uint8 grid (rows, cols, 1 or 3) as a grayscale or RGB PNG."""
    from PIL import Image

    Image.fromarray(grid[..., 0] if grid.shape[2] == 1 else grid).save(path, format="PNG")


def png_bytes(grid: np.ndarray) -> bytes:
    """A uint8 grid (rows, cols, 1 or 3) as PNG file contents."""
    import io

    buffer = io.BytesIO()
    write_png(buffer, grid)
    return buffer.getvalue()
