"""The prompt every generator sends: retrieved pages labelled ``[<file> p.<N>]``, then the question.

One place builds it so the Ollama, transformers, LangChain and LlamaIndex paths all ask the same
thing and all get citations :func:`pagesight.pipelines.answer.parse_citations` can read::

    prompt = build_prompt("How do I cite R?", hits, images=True, max_images=3)
    prompt.system   # the instructions (cite pages by their labels, say when the pages do not answer)
    prompt.user     # "Page [R-FAQ.pdf p.3]:\\n<text>\\n\\n...Question: How do I cite R?"
    prompt.images   # page image paths to attach, in the order prompt.user names them
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pagesight.errors import DocumentLoadError
from pagesight.retrieval.store import Hit

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["SYSTEM_PROMPT", "Prompt", "build_prompt", "page_block", "prompt_with_images"]

SYSTEM_PROMPT = (
    "You answer questions about documents using only the pages you are given. "
    "Each page starts with its label in square brackets, for example [report.pdf p.3]. "
    "After every statement, cite the page it comes from by writing that label exactly as given. "
    "Do not cite pages you were not given. If the pages do not contain the answer, say so briefly."
)
"""Instructions for the model (its system message, or the head of a plain prompt)."""


@dataclass(frozen=True, slots=True)
class Prompt:
    """What a generator sends for one question.

    Attributes:
        system: the instructions (:data:`SYSTEM_PROMPT` unless replaced).
        user: the labelled pages' text, a line naming the attached images, and the question.
        images: page image files to attach, in the order ``user`` names them.
        pages: the pages the prompt shows, best first.
    """

    system: str
    user: str
    images: list[Path] = field(default_factory=list)
    pages: list[Hit] = field(default_factory=list)

    def plain(self) -> str:
        """System and user text as one prompt, for models without a chat template."""
        return f"{self.system}\n\n{self.user}\nAnswer:"


def page_block(hit: Hit, max_chars: int) -> str:
    """``Page [<file> p.<N>]:`` and the page text, cut to ``max_chars`` characters on a word boundary."""
    from pagesight.pipelines.answer import citation_label

    text = " ".join(hit.text.split())
    if len(text) > max_chars:
        cut = text[:max_chars]
        text = (cut.rsplit(" ", 1)[0] if " " in cut else cut) + " …"
    return f"Page {citation_label(hit)}:\n{text or '(no text layer; see the page image)'}"


def build_prompt(
    question: str,
    pages: Sequence[Hit],
    *,
    images: bool = False,
    max_images: int = 3,
    max_chars_per_page: int = 3000,
    system: str = SYSTEM_PROMPT,
) -> Prompt:
    """Build the prompt for ``question`` over the retrieved ``pages`` (best first).

    Args:
        question: the user's question.
        pages: retrieved pages, best first; each appears once with its label and text.
        images: attach page images (for vision models): the first ``max_images`` pages that have
            an image file, and a line telling the model which label each image belongs to.
        max_images: most images attached.
        max_chars_per_page: page text is cut to this many characters.
        system: the instructions.
    """
    from pagesight.pipelines.answer import citation_label

    shown = list(pages)
    attached: list[Path] = []
    labels: list[str] = []
    if images:
        for hit in shown:
            if len(attached) >= max_images:
                break
            if hit.image is not None and Path(hit.image).is_file():
                attached.append(Path(hit.image))
                labels.append(citation_label(hit))
    parts = [page_block(h, max_chars_per_page) for h in shown]
    if labels:
        order = ", ".join(f"image {i} is {label}" for i, label in enumerate(labels, 1))
        parts.append(f"The attached images show these pages: {order}.")
    if not shown:
        parts.append("No pages were found for this question.")
    parts.append(f"Question: {question.strip()}")
    return Prompt(system=system, user="\n\n".join(parts), images=attached, pages=shown)


def prompt_with_images(
    question: str,
    pages: Sequence[Hit],
    *,
    images: bool,
    max_images: int = 3,
    max_pixels: int | None = None,
    max_chars_per_page: int = 3000,
    system: str = SYSTEM_PROMPT,
) -> tuple[Prompt, list[Image.Image]]:
    """:func:`build_prompt` and the page images it attaches, opened and bounded, in its order.

    Each image is RGB and at most ``max_pixels`` (default
    :data:`~pagesight.pipelines._images.DEFAULT_MAX_PIXELS`). A page image that cannot be read is
    dropped from its page with a warning naming the file, and the page is shown as text, so the
    "image i is [label]" line always matches the images that are sent.
    """
    from pagesight.pipelines._images import DEFAULT_MAX_PIXELS, bounded_image

    budget = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    shown = list(pages)
    opened: dict[Path, Image.Image] = {}
    if images and max_images > 0:
        for i, hit in enumerate(shown):
            if len(opened) >= max_images:
                break
            if hit.image is None or not Path(hit.image).is_file() or Path(hit.image) in opened:
                continue
            try:
                opened[Path(hit.image)] = bounded_image(hit.image, budget)
            except DocumentLoadError as e:
                warnings.warn(
                    f"skipping the unreadable page image {hit.image} ({hit.source} p.{hit.page}): {e}",
                    stacklevel=2,
                )
                shown[i] = dataclasses.replace(hit, image=None)
    prompt = build_prompt(
        question,
        shown,
        images=images and max_images > 0,
        max_images=max_images,
        max_chars_per_page=max_chars_per_page,
        system=system,
    )
    return prompt, [opened[path] for path in prompt.images if path in opened]
