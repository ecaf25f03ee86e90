"""Ingest: sources -> pages -> embeddings -> store.

Each source (file or URL; folders are expanded into their files) is loaded, embedded and written
as one unit: a source that fails leaves nothing in the store, and the others go on. Re-running
skips sources whose bytes did not change (resumable).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union, cast

import numpy as np

from pagesight._terminal import safe
from pagesight.documents import expand_sources, is_url, load_source, source_name
from pagesight.documents._common import reading
from pagesight.documents.page import Page, sha256_file
from pagesight.documents.url import redact_url
from pagesight.errors import (
    ConfigurationError,
    MissingDependencyError,
    ModelNotAvailableError,
    PagesightError,
    StoreMismatchError,
)
from pagesight.models._pages import page_embedding_text
from pagesight.models.base import DenseTextEncoder, LateInteractionEncoder
from pagesight.pipelines._prefetch import prefetch
from pagesight.retrieval.store import PageStore

if TYPE_CHECKING:
    from pagesight.retrieval.multivector import MultiVectorStore

Encoder = DenseTextEncoder | LateInteractionEncoder
Store = Union[PageStore, "MultiVectorStore"]

__all__ = ["SourceResult", "IngestReport", "ingest", "is_late_interaction", "page_embedding_text"]

logger = logging.getLogger(__name__)

Status = Literal["indexed", "unchanged", "failed"]


@dataclass(frozen=True, slots=True)
class SourceResult:
    """What happened to one source.

    Attributes:
        source: the path or URL as given; a URL without ``user:password@`` and with secret query
            values hidden (:func:`~pagesight.documents.url.redact_url`), as it is stored.
        status: ``"indexed"``, ``"unchanged"`` (skipped: same bytes already stored) or ``"failed"``.
        pages: pages written (or already stored, for ``"unchanged"``).
        error: the reason, for ``"failed"``.
        warnings: soft problems met while loading (pages without text layer, ...).
    """

    source: str
    status: Status
    pages: int = 0
    error: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(slots=True)
class IngestReport:
    """The outcome of :func:`ingest`, one :class:`SourceResult` per source."""

    results: list[SourceResult] = field(default_factory=list)

    @property
    def failed(self) -> list[SourceResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> bool:
        """``True`` when no source failed."""
        return not self.failed

    @property
    def pages_indexed(self) -> int:
        return sum(r.pages for r in self.results if r.status == "indexed")

    def summary(self) -> str:
        """A few human-readable lines: counts, then each failure with its reason."""
        n = {s: sum(r.status == s for r in self.results) for s in ("indexed", "unchanged", "failed")}
        lines = [
            f"{n['indexed']} source(s) indexed ({self.pages_indexed} pages), "
            f"{n['unchanged']} unchanged, {n['failed']} failed"
        ]
        for r in self.failed:  # the loaders' errors start with the source's name: name it once
            reason = r.error or "failed"
            line = reason if reason.startswith(f"{r.source}:") else f"{r.source}: {reason}"
            lines.append(f"  FAILED {safe(line)}")
        return "\n".join(lines)


def _progress(total: int | None, desc: str, enabled: bool | None) -> Any:
    from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty()) if enabled is None else not enabled
    return tqdm(total=total, desc=desc, unit="page", disable=disable, leave=False)


def is_late_interaction(encoder: Encoder) -> bool:
    """Whether ``encoder`` returns token matrices (late interaction) rather than one vector per text."""
    return encoder.info.kind == "late-interaction"


def _embed_pages(
    pages: Iterable[Page], encoder: Encoder, batch_size: int, bar: Any
) -> tuple[list[Page], np.ndarray | list[np.ndarray]]:
    """Consume the page stream, embedding in batches (``encoder.encode_pages``) as pages arrive.

    Returns the pages and either one ``(n, d)`` array (dense) or one token matrix per page.
    """
    late = is_late_interaction(encoder)
    kept: list[Page] = []
    embedded: list[np.ndarray] = []  # one (n, d) array per batch, or one token matrix per page
    batch: list[Page] = []

    def flush() -> None:
        if batch:
            out = encoder.encode_pages(batch)
            if late:
                embedded.extend(out)
            else:
                embedded.append(cast(np.ndarray, out))
            kept.extend(batch)
            bar.update(len(batch))
            batch.clear()

    for page in pages:
        batch.append(page)
        if len(batch) >= batch_size:
            flush()
    flush()
    if late:
        return kept, embedded
    dims = encoder.info.dimensions
    vectors = np.concatenate(embedded) if embedded else np.zeros((0, dims), dtype=np.float32)
    return kept, vectors


def _same_bytes_elsewhere(
    store: Store, source: str, content_hash: str, notes: tuple[str, ...] = ()
) -> SourceResult | None:
    """An ``unchanged`` result when another source already holds these bytes, else ``None``.

    Page ids derive from the content hash (one record per distinct page), so writing the same bytes
    under a second name would move the first name's pages to it, and re-indexing would move them back.
    """
    owner = store.source_with_hash(content_hash)
    if owner is None or owner == source:
        return None
    stored = len(store.pages(owner))  # that source's records only, not the whole store
    note = (
        f"{source} has the same bytes as {owner}, which is already indexed; its pages stay under "
        f"that name (delete {owner} first to index them as {source})"
    )
    return SourceResult(source, "unchanged", stored, warnings=(*notes, note))


def _stored_name(source: str) -> str:
    """The name a source is stored and reported under: a URL without its credentials (see redact_url)."""
    return redact_url(source) if is_url(source) else source


def _ingest_one(
    source: str,
    store: Store,
    encoder: Encoder,
    *,
    force: bool,
    batch_size: int,
    show_progress: bool | None,
    loader_options: dict[str, Any],
) -> SourceResult:
    digest: str | None = None  # a file's bytes are known before loading, a URL's only after
    source_name(source)  # a name that is not valid UTF-8 is refused before the store is asked about it
    name = _stored_name(source)  # the loader gets `source` itself: a URL's password is sent, not shown
    with reading(source):  # permission denied, a link loop, ...: this source fails, named
        if not is_url(source) and Path(source).is_file():
            digest = sha256_file(source)
    if digest is not None:
        indexed = None if force else store.source_info(source)
        if indexed is not None and indexed.content_hash == digest:
            return SourceResult(source, "unchanged", indexed.pages)
        duplicate = _same_bytes_elsewhere(store, source, digest)
        if duplicate is not None:
            return duplicate
    # Stage page images beside the store's image folder so the store can hard-link them in place.
    store.image_dir.parent.mkdir(parents=True, exist_ok=True)
    # The pid in the name lets the store remove the folder if this process dies (see PageStore).
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{os.getpid()}-", dir=store.image_dir.parent))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with _progress(None, safe(Path(name).name or name), show_progress) as bar:
                options = dict(loader_options)
                if options.get("ocr", "auto") != "never" and "ocr_progress" not in options:
                    options["ocr_progress"] = lambda n: bar.set_postfix_str(f"OCR {n}", refresh=False)
                loaded = load_source(source, image_dir=staging, **options)
                # render the next pages while the current batch is embedded
                pages, vectors = _embed_pages(prefetch(loaded, 2 * batch_size), encoder, batch_size, bar)
        # The record is process-wide: keep the user-facing warnings (pagesight's are UserWarnings)
        # and hand library deprecations, possibly from other threads, back to the warning system.
        notes = tuple(str(w.message) for w in caught if issubclass(w.category, UserWarning))
        for w in caught:
            if not issubclass(w.category, UserWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        for note in notes:
            logger.info(note)
        if not pages:
            return SourceResult(name, "failed", error="no pages were found")
        if digest is None:  # a URL: the same-bytes check a file had before loading
            duplicate = _same_bytes_elsewhere(store, name, pages[0].content_hash, notes)
            if duplicate is not None:
                return duplicate
        store.add_source(pages, vectors, embedder=encoder.info)  # type: ignore[arg-type]
        return SourceResult(name, "indexed", len(pages), warnings=notes)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _once(result: SourceResult, said: set[str]) -> SourceResult:
    """Drop the "no OCR engine is installed" warning from every source after the first that had it."""
    from pagesight.documents.ocr import OCR_INSTALL_HINT

    kept = []
    for w in result.warnings:
        if w.endswith(OCR_INSTALL_HINT):
            if OCR_INSTALL_HINT in said:
                continue
            said.add(OCR_INSTALL_HINT)
        kept.append(w)
    return result if len(kept) == len(result.warnings) else replace(result, warnings=tuple(kept))


def _store_folders(store: Store) -> list[Path]:
    """The store's own folders, never indexed as sources (stores are also found by their marker files)."""
    folders = [store.image_dir]
    token_dir = getattr(store, "token_dir", None)
    if token_dir is not None:
        folders.append(token_dir)
    return folders


def ingest(
    sources: Sequence[str | Path],
    store: Store,
    encoder: Encoder,
    *,
    force: bool = False,
    batch_size: int = 32,
    show_progress: bool | None = None,
    on_result: Callable[[SourceResult], None] | None = None,
    **loader_options: Any,
) -> IngestReport:
    """Index ``sources`` (files, folders, URLs) into ``store``.

    Args:
        sources: paths, folders (expanded recursively to their PDFs and images) and http(s) URLs.
        store: where pages go: a :class:`PageStore` for a dense encoder, a
            :class:`~pagesight.retrieval.multivector.MultiVectorStore` for a late-interaction one.
        encoder: the page embedder (dense or late interaction); the store refuses one that differs
            from what it was built with.
        force: re-index sources whose bytes did not change.
        batch_size: pages per embedding call.
        show_progress: progress bars; ``None`` shows them only on a terminal.
        on_result: called after each source (the CLI prints from it).
        **loader_options: passed to the loaders (``dpi``, ``renderer``, ``password``, ``render``, ...;
            for URLs ``timeout`` per connect and read, ``deadline`` for the whole download; OCR:
            ``ocr`` ("auto", "always", "never"), ``ocr_lang``, ``ocr_engine``, ``ocr_figures``,
            ``ocr_dpi``, ``ocr_cache`` (default ``<store>/ocr-cache``: re-indexing, even with
            ``force``, does not OCR a page again)).

    Returns:
        An :class:`IngestReport`. Failures are reported, not raised: a failing source leaves
        nothing of itself in the store and the other sources are still indexed. Errors that
        concern every source alike are raised: the store's embedder differs
        (:class:`~pagesight.errors.StoreMismatchError`), the model cannot be loaded
        (:class:`~pagesight.errors.ModelNotAvailableError`), an option is wrong
        (:class:`~pagesight.errors.ConfigurationError`) or an extra is missing.

    Example:
        >>> from pagesight.models import MatryoshkaEncoder
        >>> from pagesight.retrieval.store import PageStore
        >>> report = ingest(["examples/"], PageStore("store"), MatryoshkaEncoder())
        >>> print(report.summary())  # doctest: +SKIP
    """
    if is_late_interaction(encoder) != store.multivector:
        recorded = store.embedder
        if recorded is not None:
            raise StoreMismatchError(
                f"store {store.location} was built with {recorded.describe()}; refusing to write with "
                f"{encoder.info.describe()}. Use a new --store folder or index with the store's model."
            )
        raise ConfigurationError(
            f"{encoder.info.describe()} needs a "
            + ("MultiVectorStore" if is_late_interaction(encoder) else "PageStore")
            + f", got {type(store).__name__}"
        )
    if loader_options.get("ocr", "auto") != "never":
        from pagesight.documents.ocr import pick_engine

        # one engine for every source (a named engine that is not installed fails here, once)
        loader_options["ocr_engine"] = pick_engine(loader_options.get("ocr_engine", "auto"))
        # OCR results live beside the store, so re-indexing (and --force) does not OCR again
        loader_options.setdefault("ocr_cache", store.image_dir.parent / "ocr-cache")
    report = IngestReport()
    said: set[str] = set()  # the "no OCR engine" warning is given once, not once per source
    for source in expand_sources([os.fsdecode(s) for s in sources], exclude=_store_folders(store)):
        try:
            result = _ingest_one(
                source,
                store,
                encoder,
                force=force,
                batch_size=batch_size,
                show_progress=show_progress,
                loader_options=loader_options,
            )
        except (StoreMismatchError, ModelNotAvailableError, ConfigurationError, MissingDependencyError):
            raise  # not about this source: every other source would fail the same way
        except PagesightError as e:
            result = SourceResult(_stored_name(source), "failed", error=str(e))
        except Exception as e:  # an unexpected failure in one source must not stop the others
            logger.exception("unexpected error while indexing %s", _stored_name(source))
            result = SourceResult(_stored_name(source), "failed", error=f"{type(e).__name__}: {e}")
        result = _once(result, said)
        report.results.append(result)
        if on_result is not None:
            on_result(result)
    return report
