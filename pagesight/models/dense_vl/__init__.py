"""Dense vision-language embeddings: one vector per query, text, image or page, all in one space.

:class:`VLEncoder` serves four kinds of model:

- ``"nvidia"``: ``llama-nemotron-embed-vl-1b-v2`` and ``llama-3.2-nemoretriever-1b-vlm-embed-v1``
  through their own remote code (text queries; image, text or image+text documents);
- ``"sentence-transformers"``: CLIP / SigLIP (texts and images through one
  ``SentenceTransformer``), and ``nomic-embed-vision-v1.5`` paired with ``nomic-embed-text-v1.5``;
- ``"nv-embed"``: ``nvidia/NV-Embed-v2`` (text only, instructed queries);
- ``"e5-v"``: ``royokong/e5-v`` (a prompted LLaVA-NeXT: texts and images).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pagesight._checks import check_choice, check_int
from pagesight.errors import ConfigurationError
from pagesight.models._images import ImageInput, open_image
from pagesight.models._pages import check_texts, page_image, page_mode, page_text, warn_image_fallbacks
from pagesight.models.base import DenseModel, EmbedderInfo, LoadOptions, backend_class
from pagesight.models.dense_text import truncate_embeddings
from pagesight.models.dense_vl._backend import VLBackend, check_matrix
from pagesight.models.registry import BACKENDS as ALL_BACKENDS
from pagesight.models.registry import (
    DENSE_VL_TEXT_MODELS,
    ModelSpec,
    _read_json,
    _read_json_list,
    resolve,
)
from pagesight.types import PageInput

if TYPE_CHECKING:
    from pagesight.types import Page

__all__ = ["BACKENDS", "VLEncoder", "PageInput", "VLBackendName"]

logger = logging.getLogger(__name__)

VLBackendName = Literal["auto", "nvidia", "sentence-transformers", "nv-embed", "e5-v"]

BACKENDS: Mapping[str, str] = ALL_BACKENDS["dense-vl"]
"""Backend name -> the class that runs it (``"module:Class"``), from the registry.

Each takes ``(spec, options, task=...)``; the sentence-transformers one also ``text_model=``.
"""


def _pick_backend(spec: ModelSpec, backend: str, text_model: str | None) -> str:
    check_choice("backend", backend, ("auto", *BACKENDS))
    if spec.backend == "ollama":
        raise ConfigurationError(
            f"{spec.alias} is an Ollama model; use MatryoshkaEncoder for Ollama text embeddings"
        )
    if backend != "auto":
        return backend
    if spec.kind == "dense-vl":
        return spec.backend
    if text_model is not None:
        return "sentence-transformers"
    if spec.path is not None:
        folder = Path(spec.path)
        if not _read_json_list(folder / "modules.json") and "auto_map" in _read_json(folder / "config.json"):
            return "nvidia"
        return "sentence-transformers"
    hf_id = (spec.hf_id or "").lower()
    if hf_id.startswith("nvidia/") and ("embed-vl" in hf_id or "vlm-embed" in hf_id):
        return "nvidia"
    if hf_id.startswith("nvidia/") and "nv-embed" in hf_id:
        return "nv-embed"
    return "sentence-transformers"


class VLEncoder(DenseModel):
    """One L2-normalized float32 vector per query, text, image or page, all in one space.

    Install: ``pip install "pagesight[gpu]"`` (torch, transformers); CLIP / SigLIP run on CPU too.
    The NVIDIA embed-vl model at its pin: ``pagesight[nvidia-vl]`` (transformers 5.x, a CUDA GPU);
    NV-Embed-v2: ``pagesight[nvembed]``; E5-V: ``pagesight[e5v]`` (``pagesight doctor MODEL``).

    Instantiate::

        from pagesight.models import VLEncoder

        enc = VLEncoder(trust_remote_code=True)                 # llama-nemotron-embed-vl-1b-v2, 2048-d
        enc = VLEncoder("clip-vit-b-32")                        # CLIP through sentence-transformers, 512-d
        enc = VLEncoder("nomic-embed-vision-v1.5", trust_remote_code=True)  # + nomic-embed-text-v1.5

    Use::

        q = enc.encode_queries(["where is the invoice total?"])   # (1, 2048) float32, unit rows
        d = enc.encode_documents(["the total is 42 EUR"])          # (1, 2048)
        i = enc.encode_images(["page-1.png"])                       # (1, 2048)
        p = enc.encode_pages(pages)                                 # (len(pages), 2048), input order
        scores = q @ p.T                                            # cosine similarities

    The constructor loads nothing; the weights come on first use, once, under a lock; :meth:`load`
    loads them now.

    Pages (``page_input``): ``"auto"`` embeds image and text together when the page has both and
    the model takes both (embed-vl), the image alone when the page has no text (or the model has
    no image+text form), and the text for text-only models or pages without an image (a page with
    neither is embedded as its title, ``"<file name>, page N"``). ``"image"``, ``"text"`` and
    ``"image_text"`` force one form (:class:`~pagesight.errors.ConfigurationError` if the model
    cannot); pages without an image then fall back to their text, with one warning.

    NVIDIA settings (model card): ``processor.max_input_tiles = 6``, ``use_thumbnail = True`` and
    ``p_max_length`` 2048 for images, 10240 for image+text, 8192 for text.

    Matryoshka: ``dimensions`` is accepted only for models trained for truncation (the registry's
    ``matryoshka_dims``); vectors are then cut to that length and L2-normalized again.

    Batching: ``batch_size`` inputs per forward pass; on CUDA out-of-memory the batch is halved and
    retried (down to 1), and the smaller size is kept (:attr:`batch_size`).

    Licenses: each registry entry states its license; choosing a non-commercial model
    (``nv-embed-v2``, CC-BY-NC-4.0) warns once.

    Args:
        model: an alias of :data:`~pagesight.models.registry.DENSE_VL`, a Hub id or a local folder.
        backend: ``"auto"`` (the model's own), ``"nvidia"``, ``"sentence-transformers"``,
            ``"nv-embed"`` or ``"e5-v"``.
        dimensions: Matryoshka length to keep (see above); ``None`` keeps the native length.
        device: torch device (``None``: CUDA when available, else CPU).
        dtype: ``"bfloat16"``, ``"float16"`` or ``"float32"`` (``None``: bfloat16 on CUDA, float32 on CPU).
        batch_size: inputs per forward pass to start with.
        trust_remote_code: allow code from the model's repository (NVIDIA models, Nomic, NV-Embed).
        revision: Hub revision overriding the pinned one.
        attn_implementation: attention kernel (``None``: ``flash_attention_2`` when flash-attn
            imports, else ``sdpa``).
        page_input: what of a page the model sees (see above).
        text_model: the text model an image-only model is paired with (``nomic-embed-vision-v1.5``
            pairs with ``nomic-embed-text-v1.5`` by default); it embeds queries and texts.
        task: NV-Embed-v2's query instruction (``None``: its retrieval task).
        show_progress: show a progress bar while encoding.

    Raises:
        ModelNotAvailableError: unknown model name.
        ConfigurationError: an option out of range (the message names it).
    """

    def __init__(
        self,
        model: str = "llama-nemotron-embed-vl-1b-v2",
        *,
        backend: VLBackendName = "auto",
        dimensions: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        trust_remote_code: bool = False,
        revision: str | None = None,
        attn_implementation: str | None = None,
        page_input: PageInput = "auto",
        text_model: str | None = None,
        task: str | None = None,
        show_progress: bool = False,
    ) -> None:
        options = LoadOptions.pick(locals())
        self._init_lazy(model, options, page_input=page_input)
        self.spec = spec = resolve(model, "dense-vl")
        if text_model is None:
            text_model = spec.text_model
        self.text_model = text_model
        self.backend_name = _pick_backend(spec, backend, text_model)
        if text_model is not None and self.backend_name != "sentence-transformers":
            raise ConfigurationError(
                f"`text_model` pairs an image model with a text model through sentence-transformers; "
                f"backend {self.backend_name!r} embeds text itself (got text_model={text_model!r})"
            )
        self.page_input: PageInput = page_input
        self._dimensions = dimensions
        if dimensions is not None:
            self._check_dimensions(dimensions, spec.dimensions)
        extra: dict[str, Any] = {}
        if self.backend_name == "nv-embed":
            extra["task"] = task
        if self.backend_name == "sentence-transformers":
            extra["text_model"] = text_model
        self._backend: VLBackend = backend_class(BACKENDS, self.backend_name)(spec, options, **extra)
        self._warn_license()

    def _check_dimensions(self, dimensions: int, native: int | None) -> None:
        check_int("dimensions", dimensions, least=1)
        allowed = self.spec.matryoshka_dims
        if allowed is None:
            if native is None or dimensions == native:
                return  # unknown until the model loads (checked again then), or the native size
            raise ConfigurationError(
                f"`dimensions` cannot be {dimensions} for {self.spec.alias}: it returns {native}-d vectors "
                "and was not trained for Matryoshka truncation; leave `dimensions` unset"
            )
        check_choice("dimensions", dimensions, allowed, where=f"for {self.spec.alias} (native {native})")

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def supports_images(self) -> bool:
        """Whether the model embeds images (a sentence-transformers model is loaded to find out)."""
        if self.backend_name == "sentence-transformers":
            self.load()
        return self._backend.supports_images

    @property
    def supports_image_text(self) -> bool:
        """Whether the model embeds an image and its text together as one document."""
        if self.backend_name == "sentence-transformers":
            self.load()
        return self._backend.supports_image_text

    @property
    def info(self) -> EmbedderInfo:
        """What a store records: model id, pinned revision, dimensions, ``"dense-vl"``."""
        spec = self.spec
        model_id = self._model_id()
        revision = getattr(self._backend, "revision", None) if spec.hf_id else None
        if self.text_model is not None and self.text_model != DENSE_VL_TEXT_MODELS.get(spec.alias):
            model_id = f"{model_id}+{self.text_model}"  # another text model is another space
        return EmbedderInfo(model=model_id, revision=revision, dimensions=self.dimensions, kind="dense-vl")

    # -- encoding ---------------------------------------------------------------------------------

    def _run(self, fn: Callable[[list[Any]], np.ndarray], items: Sequence[Any], what: str) -> np.ndarray:
        if not items:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        self.load()

        def batch(chunk: list[Any]) -> list[np.ndarray]:
            return list(check_matrix(fn(chunk), len(chunk), what))

        rows = self._batched(batch, items, "Encoding queries" if what == "query" else f"Encoding {what}s")
        return truncate_embeddings(np.stack(rows), self._dimensions, "plain")

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed search queries: float32 ``(len(texts), dimensions)``, unit rows."""
        return self._run(self._backend.encode_queries, check_texts(texts), "query")

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed text documents: float32 ``(len(texts), dimensions)``, unit rows."""
        return self._run(self._backend.encode_documents, check_texts(texts), "document")

    def encode_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        """Embed images (``PIL.Image.Image`` or file paths): float32 ``(len(images), dimensions)``.

        Raises:
            ConfigurationError: the model is text-only (the message names it).
            DocumentLoadError: a file is missing or not an image.
        """
        if isinstance(images, (str, bytes)):
            raise TypeError("`images` must be a list of images or paths, not a single string")
        images = list(images)
        if images and not self.supports_images:
            raise ConfigurationError(f"{self.spec.alias} is a text-only model; it cannot embed images")
        return self._run(
            lambda batch: self._backend.encode_images([open_image(i) for i in batch]), images, "image"
        )

    def encode_pages(self, pages: Sequence[Page]) -> np.ndarray:
        """Embed pages as ``page_input`` says (see the class doc): float32 ``(len(pages), dimensions)``."""
        pages = list(pages)
        if not pages:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        self.load()
        self._check_page_input()
        modes = [
            page_mode(
                self.page_input,
                page,
                images=self.supports_images,
                image_text=self.supports_image_text,
                model=self.spec.alias,
            )
            for page in pages
        ]
        warn_image_fallbacks(self.page_input, pages, modes, stacklevel=2)
        out = np.zeros((len(pages), self.dimensions), dtype=np.float32)
        backend = self._backend
        for mode in ("text", "image", "image_text"):
            index = [i for i, m in enumerate(modes) if m == mode]
            if not index:
                continue
            group = [pages[i] for i in index]
            if mode == "text":
                texts = [page_text(p) for p in group]
                vectors = self._run(backend.encode_documents, texts, "page")
            elif mode == "image":
                vectors = self._run(
                    lambda batch: backend.encode_images([page_image(p) for p in batch]), group, "page"
                )
            else:
                vectors = self._run(
                    lambda batch: backend.encode_image_texts([(page_image(p), p.text) for p in batch]),
                    group,
                    "page",
                )
            out[index] = vectors
        return out

    def _check_page_input(self) -> None:
        """Refuse a forced form the model cannot embed, whatever the pages are."""
        policy = self.page_input
        if policy in ("image", "image_text") and not self.supports_images:
            raise ConfigurationError(
                f"page_input={policy!r} needs a model that embeds images; {self.spec.alias} is text-only"
            )
        if policy == "image_text" and not self.supports_image_text:
            raise ConfigurationError(
                f"page_input='image_text' needs a model that embeds an image and its text together; "
                f"{self.spec.alias} does not (use 'image' or 'text')"
            )
