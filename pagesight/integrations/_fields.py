"""The adapters' options, declared once per encoder family.

Each mixin is a pydantic model holding one family's options, each with its type, default,
constraint and description (the attribute docstring). The LangChain class and the LlamaIndex
class of a family both inherit it, so an option is written here and nowhere else;
:func:`option_values` hands the values to the encoder (:mod:`pagesight.integrations._encoder`).

Use::

    class VLEmbeddings(VLFields, Embeddings): ...        # LangChain
    class VLEmbedding(VLFields, MultiModalEmbedding): ...  # LlamaIndex
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from pagesight.models.dense_text import MatryoshkaEncoder
from pagesight.models.dense_vl import VLBackendName, VLEncoder
from pagesight.models.late_interaction import BackendName, ColEmbedEncoder
from pagesight.models.rerank import RerankBackendName, Reranker
from pagesight.retrieval.multivector import MultiVectorStore
from pagesight.retrieval.store import PageStore
from pagesight.types import PageInput

__all__ = [
    "COLEMBED_MODEL",
    "ColEmbedFields",
    "MATRYOSHKA_MODEL",
    "MatryoshkaFields",
    "RERANK_MODEL",
    "RerankFields",
    "VL_MODEL",
    "VLFields",
    "batch_size_of",
    "option_values",
]

MATRYOSHKA_MODEL = "all-minilm-l6-v2"
COLEMBED_MODEL = "minilm-tokens"
VL_MODEL = "llama-nemotron-embed-vl-1b-v2"
RERANK_MODEL = "llama-nemotron-rerank-vl-1b-v2"


def option_values(
    fields: BaseModel, family: type[BaseModel], *, leave_out: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The values of ``family``'s options (its fields, inherited ones included) on ``fields``."""
    return {name: getattr(fields, name) for name in family.model_fields if name not in leave_out}


def batch_size_of(fields: Any) -> int:
    """An adapter's batch size: LlamaIndex's ``embed_batch_size``, else pagesight's ``batch_size``."""
    size = getattr(fields, "embed_batch_size", None)
    return int(size if size is not None else fields.batch_size)


class _Options(BaseModel):
    """Options every family has, and the framework-free object (encoder, reranker) built from them
    once the fields are validated (cheap: nothing loads)."""

    model_config = ConfigDict(use_attribute_docstrings=True, protected_namespaces=())

    device: str | None = None
    """Torch device (``None``: CUDA when available, else CPU)."""

    trust_remote_code: bool = False
    """Allow running code from the model's repository (the NVIDIA models and nomic-embed-text-v1.5
    need it)."""

    show_progress: bool = False
    """Show a progress bar while embedding or scoring."""

    _built: Any = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._built = self._build()

    def _build(self) -> Any:
        raise NotImplementedError


class _HubOptions(_Options):
    """Options of the families whose models load with ``transformers``."""

    dtype: str | None = None
    """Weight dtype such as ``"bfloat16"`` or ``"float32"`` (``None``: bf16 on CUDA, fp32 on CPU)."""

    revision: str | None = None
    """Hub revision overriding the registry's pinned one."""

    attn_implementation: str | None = None
    """Attention kernel (``"flash_attention_2"``, ``"sdpa"``, ``"eager"``; ``None``: the best available)."""

    page_input: PageInput = "auto"
    """What of a page the model sees (``encoder.encode_pages``, reranking): ``image``, ``text`` or
    ``image_text``; ``auto`` takes both when the model can and the page has both."""


class MatryoshkaFields(_Options):
    """Options of :class:`~pagesight.models.dense_text.MatryoshkaEncoder` (dense text)."""

    model: str = MATRYOSHKA_MODEL
    """Alias (``all-minilm-l6-v2``, ``nomic-embed-text-v1.5``, ``nomic-embed-text``), Hugging Face id,
    local folder, or ``ollama:<name>``."""

    dimensions: int | None = Field(default=None, ge=1)
    """Length of the returned vectors (Matryoshka truncation); ``None`` keeps the native size."""

    backend: Literal["auto", "sentence-transformers", "ollama"] = "auto"
    """Which runtime serves the model; ``auto`` takes the model's own."""

    query_prefix: str | None = None
    """Overrides the prefix put before queries (``None``: the model's own, ``""``: none)."""

    document_prefix: str | None = None
    """Overrides the prefix put before documents (``None``: the model's own, ``""``: none)."""

    base_url: str | None = None
    """Ollama server address (``None``: ``$OLLAMA_HOST`` or ``http://127.0.0.1:11434``)."""

    window_overlap: int = Field(default=32, ge=0)
    """Tokens shared by consecutive windows of a text longer than the model's window."""

    def _build(self) -> MatryoshkaEncoder:
        from pagesight.integrations._encoder import matryoshka_encoder

        return matryoshka_encoder(self, batch_size=batch_size_of(self))

    @property
    def encoder(self) -> MatryoshkaEncoder:
        """The framework-free encoder doing the work."""
        return self._built


class ColEmbedFields(_HubOptions):
    """Options of :class:`~pagesight.models.late_interaction.ColEmbedEncoder` (late interaction)."""

    model: str = COLEMBED_MODEL
    """Alias (``minilm-tokens``, the NVIDIA ColEmbed aliases), Hugging Face id or local folder."""

    backend: BackendName = "auto"
    """Which runtime serves the model: ``nvidia`` (ColEmbed remote code), ``sentence-transformers``
    (ColBERT/ColPali ``MultiVectorEncoder``), ``token-embeddings`` (a plain model's token vectors);
    ``auto`` takes the model's own."""

    def _build(self) -> ColEmbedEncoder:
        from pagesight.integrations._encoder import colembed_encoder

        return colembed_encoder(self, batch_size=batch_size_of(self))

    @property
    def encoder(self) -> ColEmbedEncoder:
        """The framework-free encoder doing the work."""
        return self._built


class VLFields(_HubOptions):
    """Options of :class:`~pagesight.models.dense_vl.VLEncoder` (dense vision-language)."""

    model: str = VL_MODEL
    """Alias (``llama-nemotron-embed-vl-1b-v2``, ``clip-vit-b-32``, ``siglip-base-patch16-224``,
    ``nomic-embed-vision-v1.5``, ``nv-embed-v2``, ``e5-v``), Hugging Face id or local folder."""

    backend: VLBackendName = "auto"
    """Which runtime serves the model (``nvidia``, ``sentence-transformers``, ``nv-embed``, ``e5-v``);
    ``auto`` takes the model's own."""

    dimensions: int | None = Field(default=None, ge=1)
    """Length of the returned vectors (Matryoshka truncation, where the model was trained for it);
    ``None`` keeps the native size."""

    text_model: str | None = None
    """Model for queries and texts when the image model has a separate text tower
    (nomic-embed-vision-v1.5 pairs with nomic-embed-text-v1.5; ``None``: the model's own)."""

    task: str | None = None
    """NV-Embed-v2's query instruction (``None``: its retrieval task)."""

    def _build(self) -> VLEncoder:
        from pagesight.integrations._encoder import vl_encoder

        return vl_encoder(self, batch_size=batch_size_of(self))

    @property
    def encoder(self) -> VLEncoder:
        """The framework-free encoder doing the work."""
        return self._built


class RerankFields(_HubOptions):
    """Options of :class:`~pagesight.models.rerank.Reranker`, what the adapters add, and the
    reranker built from them (cheap: no weights load)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str = RERANK_MODEL
    """Alias (``llama-nemotron-rerank-vl-1b-v2``, ``ms-marco-minilm-l6-v2``, ``nanoranker``), Hugging
    Face id or local folder."""

    backend: RerankBackendName = "auto"
    """Which runtime serves the model (``nvidia``, ``cross-encoder``, ``nanoranker``); ``auto`` takes
    the model's own."""

    top_n: int = Field(default=5, ge=0)
    """How many documents (nodes) to return (``0`` returns none and loads nothing)."""

    batch_size: int = Field(default=8, ge=1)
    """Query-page pairs per forward pass."""

    max_length: int | None = Field(default=None, ge=1)
    """Token limit per pair (``None``: 2048 when a page image is in the batch, 8192 for text only)."""

    store: PageStore | MultiVectorStore | str | Path | None = None
    """Where relative image paths point: a store, or an embedded store's folder (images in
    ``<folder>/images``); ``None`` takes paths as they are."""

    def _build(self) -> Reranker:
        from pagesight.integrations._encoder import build_reranker

        return build_reranker(self)

    @property
    def reranker(self) -> Reranker:
        """The framework-free reranker doing the work."""
        return self._built
