"""Images in: a PIL image or a path, opened as RGB, with errors that name the file and page."""

from __future__ import annotations

import os
from typing import Any

from pagesight.errors import DocumentLoadError

__all__ = ["ImageInput", "open_image"]

ImageInput = Any
"""A ``PIL.Image.Image``, or a path (``str`` / ``os.PathLike``) to an image file."""


def open_image(image: ImageInput, *, source: str | None = None, page: int | None = None) -> Any:
    """Open ``image`` (a PIL image or a file path) as an RGB ``PIL.Image.Image``.

    Raises:
        DocumentLoadError: the file is missing or not an image (names the file and page).
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if not isinstance(image, (str, os.PathLike)):
        raise TypeError(f"images must be PIL images or file paths, got {type(image).__name__}")
    where = source if source is not None else str(image)
    try:
        with Image.open(image) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError as e:
        raise DocumentLoadError(where, f"image file {os.fspath(image)} does not exist", page=page) from e
    except (UnidentifiedImageError, OSError) as e:
        raise DocumentLoadError(where, f"{os.fspath(image)} is not a readable image ({e})", page=page) from e
