"""The page policy both page encoders share: which form of a page (text, image, both) a model sees."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pagesight.errors import ConfigurationError, DocumentLoadError
from pagesight.models._images import open_image

if TYPE_CHECKING:
    from pagesight.types import Page

__all__ = [
    "check_texts",
    "page_embedding_text",
    "page_image",
    "page_mode",
    "page_text",
    "page_title",
    "warn_image_fallbacks",
]


def page_title(page: Page) -> str:
    """What a page with no text is embedded as by text-only models: ``"<file name>, page N"``."""
    name = page.source.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1] or page.source
    return f"{name}, page {page.page}"


def page_text(page: Page) -> str:
    """The page's text, or its title when it has none."""
    return page.text if page.text.strip() else page_title(page)


def page_embedding_text(page: Page) -> str:
    """The text a dense text encoder embeds for a page.

    A page without a text layer is embedded by its title (``"<file name>, page N"``) so that it
    stays findable by name instead of sharing the empty string's vector with every other
    image-only page.
    """
    if page.text.strip():
        return page.text
    name = page.source.rstrip("/").rsplit("/", 1)[-1]
    return f"{name}, page {page.page}"


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, refusing a bare string or a non-string item."""
    if isinstance(texts, str):
        raise TypeError("`texts` must be a list of strings, not a single string")
    out = list(texts)
    for text in out:
        if not isinstance(text, str):
            raise TypeError(f"`texts` must hold strings, got {type(text).__name__}")
    return out


def page_mode(policy: str, page: Page, *, images: bool, image_text: bool, model: str) -> str:
    """``"text"``, ``"image"`` or ``"image_text"``: the form of ``page`` the model embeds.

    Args:
        policy: ``"auto"``, ``"image"``, ``"text"`` or ``"image_text"`` (the encoders' ``page_input``).
        page: the page.
        images: the model embeds images.
        image_text: the model embeds an image and its text together.
        model: names the model in errors.

    Raises:
        ConfigurationError: ``policy`` asks for a form the model cannot embed.
    """
    if policy == "text" or page.image is None:
        return "text"
    if not images:
        if policy in ("image", "image_text"):
            raise ConfigurationError(
                f"page_input={policy!r} needs a model that embeds images; {model} is text-only"
            )
        return "text"
    if policy == "image" or not page.text.strip():
        return "image"
    if image_text:
        return "image_text"
    if policy == "image_text":
        raise ConfigurationError(
            f"page_input='image_text' needs a model that embeds an image and its text together; "
            f"{model} does not (use 'image' or 'text')"
        )
    return "image"


def warn_image_fallbacks(
    policy: str, pages: Sequence[Page], modes: Sequence[str], *, stacklevel: int
) -> None:
    """One warning for the pages an image form was asked for but that have no rendered image."""
    fallbacks = [
        p
        for p, m in zip(pages, modes, strict=True)
        if m == "text" and policy in ("image", "image_text") and p.image is None
    ]
    if fallbacks:
        warnings.warn(
            f"{len(fallbacks)} page(s) have no rendered image (e.g. {fallbacks[0].source} page "
            f"{fallbacks[0].page}); embedded from their text instead",
            UserWarning,
            stacklevel=stacklevel + 1,
        )


def page_image(page: Page) -> Any:
    """The page's image as an RGB ``PIL.Image.Image``; ``DocumentLoadError`` names an unreadable page."""
    if page.image is None:  # pragma: no cover - modes route such pages to text
        raise DocumentLoadError(page.source, "the page has no rendered image", page=page.page)
    return open_image(page.image, source=page.source, page=page.page)
