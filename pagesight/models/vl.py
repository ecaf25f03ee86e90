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
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pagesight.errors import ConfigurationError
from pagesight.models._colembed_batching import run_batched
from pagesight.models._colembed_common import ImageInput, check_dtype, open_image
from pagesight.models._licenses import warn_non_commercial
from pagesight.models._pages import check_texts, page_image, page_mode, page_text, warn_image_fallbacks
from pagesight.models._vl_common import VLBackend, check_matrix
from pagesight.models.base import EmbedderInfo
from pagesight.models.matryoshka import truncate_embeddings
from pagesight.models.registry import (
    DENSE_VL_TEXT_MODELS,
    ModelSpec,
    _read_json,
    _read_json_list,
    resolve_dense_vl,
)

if TYPE_CHECKING:
    from pagesight.documents.page import Page

__all__ = ["VLEncoder", "PageInput", "VLBackendName"]

logger = logging.getLogger(__name__)

PageInput = Literal["auto", "image", "text", "image_text"]
VLBackendName = Literal["auto", "nvidia", "sentence-transformers", "nv-embed", "e5-v"]
_BACKENDS = ("auto", "nvidia", "sentence-transformers", "nv-embed", "e5-v")
_PAGE_INPUTS = ("auto", "image", "text", "image_text")


def _pick_backend(spec: ModelSpec, backend: str, text_model: str | None) -> str:
    if backend not in _BACKENDS:
        raise ConfigurationError(f"`backend` must be one of {', '.join(_BACKENDS)}; got {backend!r}")
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


class VLEncoder:
    """One L2-normalized float32 vector per query, text, image or page, all in one space.

    Install: ``pip install "pagesight[gpu]"`` (torch, transformers; a CUDA GPU for the NVIDIA models,
    whose remote code needs ``transformers>=4.56``); CLIP / SigLIP run on CPU too.

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
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigurationError(f"`batch_size` must be a positive integer, got {batch_size!r}")
        if page_input not in _PAGE_INPUTS:
            raise ConfigurationError(
                f"`page_input` must be one of {', '.join(_PAGE_INPUTS)}; got {page_input!r}"
            )
        try:
            check_dtype(dtype)
        except ValueError as e:
            raise ConfigurationError(str(e)) from None
        spec = resolve_dense_vl(model)
        if text_model is None:
            text_model = DENSE_VL_TEXT_MODELS.get(spec.alias)
        self.model = model
        self.spec = spec
        self.text_model = text_model
        self.backend_name = _pick_backend(spec, backend, text_model)
        if text_model is not None and self.backend_name != "sentence-transformers":
            raise ConfigurationError(
                f"`text_model` pairs an image model with a text model through sentence-transformers; "
                f"backend {self.backend_name!r} embeds text itself (got text_model={text_model!r})"
            )
        self.page_input: PageInput = page_input
        self.show_progress = show_progress
        self._batch_size = batch_size
        self._dimensions = dimensions
        if dimensions is not None:
            self._check_dimensions(dimensions, spec.dimensions)
        self._backend = self._make_backend(
            device=device,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            revision=revision,
            attn_implementation=attn_implementation,
            task=task,
        )
        self._lock = threading.Lock()
        self._loaded = False
        if spec.commercial_use is False:
            warn_non_commercial(self.spec)

    def _make_backend(self, **kwargs: Any) -> VLBackend:
        name = self.backend_name
        if name == "nvidia":
            from pagesight.models._vl_nvidia import NvidiaEmbedVLBackend

            return NvidiaEmbedVLBackend(self.spec, **kwargs)
        if name == "nv-embed":
            from pagesight.models._vl_nvembed import NVEmbedBackend

            backend: VLBackend = NVEmbedBackend(self.spec, **kwargs)
            return backend
        if name == "e5-v":
            from pagesight.models._vl_e5v import E5VBackend

            backend = E5VBackend(self.spec, **kwargs)
            return backend
        from pagesight.models._vl_st import STMultimodalBackend

        return STMultimodalBackend(self.spec, text_model=self.text_model, **kwargs)

    def _check_dimensions(self, dimensions: int, native: int | None) -> None:
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
            raise ConfigurationError(f"`dimensions` must be a positive integer, got {dimensions!r}")
        allowed = self.spec.matryoshka_dims
        if allowed is None:
            if native is None or dimensions == native:
                return  # unknown until the model loads (checked again then), or the native size
            raise ConfigurationError(
                f"`dimensions` cannot be {dimensions} for {self.spec.alias}: it returns {native}-d vectors "
                "and was not trained for Matryoshka truncation; leave `dimensions` unset"
            )
        if dimensions not in allowed:
            raise ConfigurationError(
                f"`dimensions` must be one of {', '.join(map(str, allowed))} for {self.spec.alias} "
                f"(native {native}), got {dimensions}"
            )

    # -- lifecycle --------------------------------------------------------------------------------

    def load(self) -> VLEncoder:
        """Load the weights now instead of on first use.

        Raises:
            ModelNotAvailableError: the weights cannot be loaded; the message says what to do.
            ConfigurationError: remote code is needed and ``trust_remote_code`` is not set, or
                ``dimensions`` does not fit the loaded model.
        """
        if self._loaded:
            return self
        with self._lock:
            if not self._loaded:
                self._backend.load()
                if self._dimensions is not None and self.spec.dimensions is None:
                    self._check_dimensions(self._dimensions, self._backend.native_dimensions)
                self._loaded = True
        return self

    @property
    def batch_size(self) -> int:
        """Inputs per forward pass (lowered after a CUDA out-of-memory error)."""
        return self._batch_size

    def _set_batch_size(self, size: int) -> None:
        self._batch_size = size

    @property
    def native_dimensions(self) -> int:
        """The model's own vector length (loads the model when the registry does not know it)."""
        if self.spec.dimensions is not None:
            return self.spec.dimensions
        return self.load()._backend.native_dimensions

    @property
    def dimensions(self) -> int:
        """Length of the returned vectors: ``dimensions`` when given, else :attr:`native_dimensions`."""
        return self._dimensions if self._dimensions is not None else self.native_dimensions

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
        if spec.path is not None:
            model_id = str(Path(spec.path).resolve())
        elif spec.hf_id is not None:
            model_id = spec.hf_id
        else:
            model_id = spec.alias
        revision = getattr(self._backend, "revision", None) if spec.hf_id else None
        if self.text_model is not None and self.text_model != DENSE_VL_TEXT_MODELS.get(spec.alias):
            model_id = f"{model_id}+{self.text_model}"  # another text model is another space
        return EmbedderInfo(model=model_id, revision=revision, dimensions=self.dimensions, kind="dense-vl")

    def __repr__(self) -> str:
        return f"VLEncoder({self.model!r}, backend={self.backend_name!r}, page_input={self.page_input!r})"

    # -- encoding ---------------------------------------------------------------------------------

    def _run(self, fn: Callable[[list[Any]], np.ndarray], items: Sequence[Any], what: str) -> np.ndarray:
        if not items:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        self.load()

        def batch(chunk: list[Any]) -> list[np.ndarray]:
            return list(check_matrix(fn(chunk), len(chunk), what))

        rows = run_batched(
            batch,
            items,
            self._batch_size,
            on_resize=self._set_batch_size,
            progress=self.show_progress,
            desc="Encoding queries" if what == "query" else f"Encoding {what}s",
        )
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
