"""Page images for vision generators: opened, converted to RGB, and bounded in pixels."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from pagesight.errors import DocumentLoadError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["bounded_image", "png_bytes", "DEFAULT_MAX_PIXELS"]

DEFAULT_MAX_PIXELS = 1024 * 1024
"""Default pixel budget per attached page image (about 1 megapixel)."""


def bounded_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``path`` as RGB, scaled down (aspect kept) so width x height <= ``max_pixels``.

    Raises:
        DocumentLoadError: the file is missing or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    if max_pixels < 1:
        raise ValueError(f"max_pixels must be at least 1, got {max_pixels}")
    try:
        with Image.open(path) as img:
            img.load()
            rgb = img.convert("RGB")
    except (OSError, UnidentifiedImageError) as e:
        raise DocumentLoadError(str(path), f"cannot read the page image ({e}); re-index the source") from e
    w, h = rgb.size
    if w * h > max_pixels:
        scale = (max_pixels / (w * h)) ** 0.5
        size = (max(1, int(w * scale)), max(1, int(h * scale)))
        while size[0] * size[1] > max_pixels:  # rounding can leave it a few pixels over
            size = (max(1, size[0] - 1), max(1, size[1] - 1))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    return rgb


def png_bytes(img: Image.Image) -> bytes:
    """The image encoded as PNG."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
