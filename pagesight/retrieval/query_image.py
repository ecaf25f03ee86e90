"""Query images: a path, a PIL image or encoded bytes, opened as RGB with the loaders' safety limits.

:meth:`pagesight.Index.search` and the retrievers take ``image=`` for models that embed images
(dense vision-language and late-interaction image models); this module opens that image and says
which models can take it.

Example::

    picture = open_query_image("photo.png")          # PIL.Image.Image, RGB
    picture = open_query_image(png_bytes)            # the format is read from the bytes
    check_image_encoder(encoder)                     # ImageQueryError for a text-only model
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Any

from pagesight.errors import DocumentLoadError, EmptyDocumentError, ImageQueryError, ImageTooLargeError

__all__ = ["IMAGE_QUERY_MODELS", "QUERY_IMAGE", "check_image_encoder", "open_query_image"]

QUERY_IMAGE = "query image"
"""How errors name an image given as bytes or as a PIL image."""

IMAGE_QUERY_MODELS = (
    "dense vision-language models (llama-nemotron-embed-vl-1b-v2, CLIP, SigLIP, E5-V) and "
    "late-interaction image models (the NVIDIA ColEmbed models, ColPali)"
)
"""What the error for a text-only model lists as the models that take an image query."""


def open_query_image(image: Any, *, max_pixels: int | None = None) -> Any:
    """``image`` (a file path, a ``PIL.Image.Image`` or encoded PNG/JPEG/TIFF/WebP bytes) as RGB.

    Files and bytes are checked like the loaders check image files: the format is read from the
    bytes, the pixel count from the header before anything is decoded, EXIF rotation is applied
    and transparency is put over white.

    Args:
        image: the query image.
        max_pixels: refuse a larger image (``None``: the loaders' default, about 89 megapixels).

    Raises:
        SourceNotFoundError: a path that does not exist.
        EmptyDocumentError: empty bytes or an empty file.
        ImageTooLargeError: more than ``max_pixels`` pixels.
        DocumentLoadError: not an image in a supported format, or damaged.
        ImageQueryError: ``image`` is none of the accepted kinds.
    """
    from PIL import Image

    from pagesight.documents._common import check_file, reading
    from pagesight.documents.images import DEFAULT_MAX_PIXELS, IMAGE_FORMATS, _to_rgb, sniff_image_format

    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(image, Image.Image):
        if image.width * image.height > limit:
            raise ImageTooLargeError(QUERY_IMAGE, _too_large(image.width, image.height, limit))
        return image if image.mode == "RGB" else _to_rgb(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        data, name = bytes(image), QUERY_IMAGE
    elif isinstance(image, (str, os.PathLike)):
        name = os.fsdecode(image)
        file = check_file(image, name)
        with reading(name):
            data = file.read_bytes()
    else:
        raise ImageQueryError(
            "a query image must be a file path, a PIL image or encoded image bytes, "
            f"got {type(image).__name__}"
        )
    if not data:
        raise EmptyDocumentError(name, "the image is empty (0 bytes)")
    if sniff_image_format(data[:16]) is None:
        raise DocumentLoadError(name, "not a PNG, JPEG, TIFF or WebP image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS)) as opened:
                if opened.width * opened.height > limit:
                    raise ImageTooLargeError(name, _too_large(opened.width, opened.height, limit))
                return _to_rgb(opened)
    except (ImageTooLargeError, Image.DecompressionBombError) as e:
        if isinstance(e, ImageTooLargeError):
            raise
        raise ImageTooLargeError(name, str(e)) from e
    except Exception as e:  # Pillow raises many kinds for damaged data
        raise DocumentLoadError(name, f"the image cannot be decoded ({e})") from e


def _too_large(width: int, height: int, limit: int) -> str:
    return f"the image is {width} x {height} pixels, more than max_pixels={limit:,}; scale it down"


def check_image_encoder(encoder: Any) -> None:
    """Refuse an encoder that cannot embed a query image, naming it and the models that can.

    Raises:
        ImageQueryError: ``encoder`` has no ``encode_images`` or its model is text-only.
    """
    info = getattr(encoder, "info", None)
    spec = getattr(encoder, "spec", None)
    name = getattr(spec, "alias", None) or getattr(info, "model", type(encoder).__name__)
    kind = getattr(info, "kind", None)
    embeds = callable(getattr(encoder, "encode_images", None)) and kind in ("dense-vl", "late-interaction")
    if embeds:
        embeds = bool(getattr(encoder, "supports_images", True))
    if not embeds:
        raise ImageQueryError(
            f"{name} ({kind or 'unknown kind'}) embeds text only, so it cannot search by image; "
            f"image queries need a store built with a model that embeds images: {IMAGE_QUERY_MODELS}"
        )
