"""Late-interaction encoders: one L2-normalized vector per token, scored with MaxSim.

:class:`ColEmbedEncoder` serves three kinds of model behind the
:class:`~pagesight.models.base.LateInteractionEncoder` protocol:

- ``"nvidia"``: NVIDIA's ColEmbed models (``llama-nemoretriever-colembed-3b-v1`` / ``-1b-v1``,
  ``llama-nemotron-colembed-vl-3b-v2``, ``nemotron-colembed-vl-4b-v2`` / ``-8b-v2``) through their
  own remote code: text queries, page images, and image+text pages;
- ``"sentence-transformers"``: any ColBERT / ColPali model sentence-transformers'
  ``MultiVectorEncoder`` loads (images where the model takes them);
- ``"token-embeddings"``: the per-token vectors of any plain sentence-transformers model, text only;
  ``"minilm-tokens"`` is the bundled all-MiniLM-L6-v2 read this way, the offline default.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pagesight._checks import check_choice
from pagesight.errors import ConfigurationError
from pagesight.models._images import ImageInput, open_image
from pagesight.models._pages import (
    check_texts,
    page_image,
    page_mode,
    page_text,
    page_title,
    warn_image_fallbacks,
)
from pagesight.models.base import EmbedderInfo, LazyModel, LoadOptions, backend_class
from pagesight.models.late_interaction._backend import ColEmbedBackend
from pagesight.models.late_interaction.layout import ImageTokenLayout
from pagesight.models.registry import BACKENDS as ALL_BACKENDS
from pagesight.models.registry import ModelSpec, _read_json, _read_json_list, resolve
from pagesight.types import PageInput

if TYPE_CHECKING:
    from pagesight.types import Page

__all__ = ["BACKENDS", "BackendName", "ColEmbedEncoder", "PageInput", "page_title"]

logger = logging.getLogger(__name__)

BackendName = Literal["auto", "nvidia", "sentence-transformers", "token-embeddings"]

BACKENDS: Mapping[str, str] = ALL_BACKENDS["late-interaction"]
"""Backend name -> the class that runs it (``"module:Class"``), from the registry.
"""


def _pick_backend(spec: ModelSpec, backend: str) -> str:
    check_choice("backend", backend, ("auto", *BACKENDS))
    if spec.backend == "ollama":
        raise ConfigurationError(
            f"{spec.alias} is an Ollama model; Ollama serves one vector per text, not token vectors"
        )
    if backend != "auto":
        return backend
    if spec.kind == "late-interaction":
        return spec.backend
    if spec.kind == "dense-text" and spec.revision is not None:  # a listed plain sentence-transformers model
        return "token-embeddings"
    if spec.path is not None:
        folder = Path(spec.path)
        st_config = _read_json(folder / "config_sentence_transformers.json")
        modules = " ".join(str(m.get("type", "")) for m in _read_json_list(folder / "modules.json"))
        if st_config.get("model_type") == "MultiVectorEncoder" or "MultiVectorMask" in modules:
            return "sentence-transformers"
        if "auto_map" in _read_json(folder / "config.json") and not modules:
            return "nvidia"
        return "token-embeddings"
    hf_id = (spec.hf_id or "").lower()
    if hf_id.startswith("nvidia/") and "colembed" in hf_id:
        return "nvidia"
    return "sentence-transformers"


class ColEmbedEncoder(LazyModel):
    """Token-level (late-interaction) embeddings of queries, texts, images and pages.

    Install: ``pip install "pagesight[offline]"`` for the bundled ``minilm-tokens``;
    ``pip install "pagesight[colembed-llama]"`` (``transformers==4.49.0``; plus
    ``pip install flash-attn --no-build-isolation``: the v1 models import it) for the v1 models and
    ``llama-nemotron-colembed-vl-3b-v2``, ``pip install "pagesight[colembed-qwen]"``
    (``transformers==5.0.0``) for the 4B/8B v2 models (CUDA GPU; ``pagesight doctor MODEL`` says
    what is missing); ``pagesight[gpu]`` for ColBERT/ColPali models.

    Instantiate::

        from pagesight.models import ColEmbedEncoder

        enc = ColEmbedEncoder()                                      # offline MiniLM token vectors, 384-d
        enc = ColEmbedEncoder("llama-nemoretriever-colembed-3b-v1", trust_remote_code=True)
        enc = ColEmbedEncoder("lightonai/GTE-ModernColBERT-v1")      # a MultiVectorEncoder (ColBERT)

    Use::

        q = enc.encode_queries(["where is the invoice total?"])      # [ (n_q, d) float32 ], unit rows
        p = enc.encode_pages(pages)                                  # [ (n_tokens, d) ] per page
        i = enc.encode_images(["page-1.png"])                        # [ (n_tokens, d) ]  (image models)
        score = (q[0] @ p[0].T).max(axis=1).sum()                    # MaxSim

    Where the document tokens are (for heatmaps): :meth:`document_token_spans` gives the characters
    behind each row of :meth:`encode_documents` (text-token models), :meth:`image_token_layout`
    the patch grids behind the rows of :meth:`encode_images` (NVIDIA models); both return ``None``
    where the model does not say.

    Every returned matrix is float32 ``(n_tokens, dimensions)``, padding removed, each row of unit
    length. The constructor loads nothing; the weights come on first use, once, under a lock;
    :meth:`load` loads them now.

    Pages (``page_input``): ``"auto"`` embeds image and text together when the model takes both
    and the page has text (NVIDIA ``forward_documents``), the image alone when the page has no
    text or the model takes no image+text input, and the text for text-only models; ``"image"``,
    ``"text"`` and ``"image_text"`` force one form. A page without an image (an HTML page,
    ``render=False``) is embedded from its text, with a warning when an image form was asked for.
    Text-only models embed a page with no text as its title, ``"<file name>, page N"``.

    NVIDIA text documents: the remote code has no text-passage method, so text documents go through
    ``forward_queries`` as in NVIDIA's own deployment; queries and documents differ for image pages.

    Batching: ``batch_size`` inputs per forward pass; on CUDA out-of-memory the batch is halved and
    retried (down to 1), and the smaller size is kept (:attr:`batch_size`).

    Licenses: the NVIDIA ColEmbed models are for non-commercial / research use only (NVIDIA
    Non-Commercial License; CC-BY-NC-4.0 for the 4B/8B v2 models); choosing one warns once.

    Args:
        model: ``"minilm-tokens"``, an NVIDIA ColEmbed alias or Hub id, another Hub id, or a local folder.
        backend: ``"auto"`` (the model's own), ``"nvidia"``, ``"sentence-transformers"`` or
            ``"token-embeddings"``.
        device: torch device (``None``: CUDA when available, else CPU).
        dtype: ``"bfloat16"``, ``"float16"`` or ``"float32"`` (``None``: bfloat16 on CUDA, float32 on CPU).
        batch_size: inputs per forward pass to start with.
        trust_remote_code: allow code from the model's repository (the NVIDIA models need it).
        revision: Hub revision overriding the pinned one.
        attn_implementation: attention kernel for the NVIDIA models (``None``: ``flash_attention_2``
            when flash-attn imports, else ``sdpa``).
        page_input: what of a page the model sees (see above).
        show_progress: show a progress bar while encoding.

    Raises:
        ModelNotAvailableError: unknown model name.
        ConfigurationError: an option out of range (the message names it).
    """

    def __init__(
        self,
        model: str = "minilm-tokens",
        *,
        backend: BackendName = "auto",
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        trust_remote_code: bool = False,
        revision: str | None = None,
        attn_implementation: str | None = None,
        page_input: PageInput = "auto",
        show_progress: bool = False,
    ) -> None:
        options = LoadOptions.pick(locals())
        self._init_lazy(model, options, page_input=page_input)
        self.spec = spec = resolve(model, "late-interaction")
        self.page_input: PageInput = page_input
        self.backend_name = _pick_backend(spec, backend)
        self._backend: ColEmbedBackend = backend_class(BACKENDS, self.backend_name)(spec, options)
        self._warn_license()

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def dimensions(self) -> int:
        """Length of each token vector (loads the model when the registry does not know it)."""
        if self.spec.dimensions is not None:
            return self.spec.dimensions
        return self.load()._backend.dimensions

    @property
    def supports_images(self) -> bool:
        """Whether the model embeds images (a sentence-transformers model is loaded to find out)."""
        if self.backend_name == "token-embeddings":
            return False
        if self.backend_name == "nvidia" and not self._loaded:
            return True
        return self.load()._backend.supports_images

    @property
    def info(self) -> EmbedderInfo:
        """What a store records: model id, pinned revision, token dimensions, ``"late-interaction"``."""
        backend: Any = self._backend
        return EmbedderInfo(
            model=self._model_id(),
            revision=backend.model_revision(),
            dimensions=self.dimensions,
            kind="late-interaction",
        )

    # -- encoding ---------------------------------------------------------------------------------

    def _run(self, fn: Any, items: Sequence[Any], desc: str) -> list[np.ndarray]:
        if not items:
            return []
        self.load()
        # the size also bounds a backend's text windows
        return self._batched(lambda batch: fn(batch, self._batch_size), items, desc)

    def encode_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token matrices of search queries: one float32 ``(n_tokens, dimensions)`` per text."""
        return self._run(self._backend.encode_queries, check_texts(texts), "Encoding queries")

    def encode_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token matrices of text documents (long texts are windowed, never cut)."""
        return self._run(self._backend.encode_documents, check_texts(texts), "Encoding documents")

    def encode_images(self, images: Sequence[ImageInput]) -> list[np.ndarray]:
        """Token matrices of images (``PIL.Image.Image`` or file paths), one per image.

        Raises:
            ConfigurationError: the model is text-only (the message names it).
            DocumentLoadError: a file is missing or not an image.
        """
        images = list(images)
        if not images:
            return []
        if not self.supports_images:
            raise ConfigurationError(f"{self.spec.alias} is a text-only model; it cannot embed images")

        def embed(batch: list[ImageInput], size: int) -> list[np.ndarray]:
            return self._backend.encode_images([open_image(i) for i in batch], size)

        return self._run(embed, images, "Encoding images")

    def encode_pages(self, pages: Sequence[Page]) -> list[np.ndarray]:
        """Token matrices of pages: image, text or both, as ``page_input`` says (see the class doc)."""
        pages = list(pages)
        if not pages:
            return []
        self.load()
        backend = self._backend
        modes = [
            page_mode(
                self.page_input,
                page,
                images=backend.supports_images,
                image_text=backend.supports_image_text,
                model=self.spec.alias,
            )
            for page in pages
        ]
        warn_image_fallbacks(self.page_input, pages, modes, stacklevel=2)
        out: list[np.ndarray | None] = [None] * len(pages)
        for mode in ("text", "image", "image_text"):
            index = [i for i, m in enumerate(modes) if m == mode]
            if not index:
                continue
            group = [pages[i] for i in index]
            if mode == "text":
                matrices = self._run(
                    self._backend.encode_documents,
                    [page_text(p) for p in group],
                    "Encoding pages",
                )
            elif mode == "image":
                matrices = self._run(
                    lambda batch, size: self._backend.encode_images([page_image(p) for p in batch], size),
                    group,
                    "Encoding page images",
                )
            else:
                matrices = self._run(
                    lambda batch, size: self._backend.encode_image_texts(
                        [(page_image(p), p.text) for p in batch], size
                    ),
                    group,
                    "Encoding pages",
                )
            for i, matrix in zip(index, matrices, strict=True):
                out[i] = matrix
        return [m for m in out if m is not None]

    # -- token locations --------------------------------------------------------------------------

    def document_token_spans(self, texts: Sequence[str]) -> list[np.ndarray] | None:
        """Where each row of :meth:`encode_documents` comes from in its text, or ``None``.

        One ``(n_rows, 2)`` int64 array per text, row ``i`` the ``[start, end)`` characters of the
        token behind row ``i`` of ``encode_documents([text])[0]`` (the same tokenization and
        windows), ``(-1, -1)`` for a row from no character (an empty text's special tokens).

        Example::

            spans = enc.document_token_spans(["Invoice total: 42 EUR"])[0]   # (n_rows, 2)
            [text[s:e] for s, e in spans]        # ['invoice', 'total', ':', '42', 'eu', '##r']

        ``MultiVectorEncoder`` (ColBERT) models: rows of prompt and special tokens are
        ``(-1, -1)``; their spans come from one extra pass through the model's document path.
        Returns ``None`` where the backend cannot say (NVIDIA models; a slow tokenizer).
        """
        hook = getattr(self._backend, "token_spans", None)
        if hook is None:
            logger.info(
                "%s (%s backend) does not map its tokens to characters", self.spec.alias, self.backend_name
            )
            return None
        texts = check_texts(texts)
        self.load()
        result: list[np.ndarray] | None = hook(texts)
        return result

    def image_token_layout(self, image: ImageInput) -> ImageTokenLayout | None:
        """Where the rows of ``encode_images([image])[0]`` lie on the image, or ``None``.

        The layout's :class:`~pagesight.models.late_interaction.layout.TokenGrid` s give, for runs of
        consecutive rows, the patch grid and the box of the image (pixels) it covers; rows outside
        every grid (prompt and marker tokens) have no place. ``layout.tokens`` is the row count the
        layout expects, to check against the matrix. ``None`` (reason logged at INFO) for text-only
        models and for models whose image-token layout is not known.

        Raises:
            DocumentLoadError: ``image`` is a path to a missing or unreadable file.
        """
        if self.backend_name == "token-embeddings":
            return None
        hook = getattr(self._backend, "image_token_layout", None)
        if hook is None:
            logger.info("%s (%s backend) has no known image-token layout", self.spec.alias, self.backend_name)
            return None
        self.load()
        if not self._backend.supports_images:
            return None
        result: ImageTokenLayout | None = hook(open_image(image))
        return result
