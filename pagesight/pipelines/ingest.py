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
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union, cast

import numpy as np

from pagesight._terminal import safe
from pagesight.documents import expand_sources, is_url, load_source, source_name
from pagesight.documents._common import canonical_source, reading, same_source
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
from pagesight.pipelines.distributed import RayExecutor, as_executor, ingest_on_ray
from pagesight.retrieval.store import PageStore

if TYPE_CHECKING:
    from pagesight.retrieval.multivector import MultiVectorStore

Encoder = DenseTextEncoder | LateInteractionEncoder
Store = Union[PageStore, "MultiVectorStore"]

__all__ = [
    "SourceResult",
    "IngestReport",
    "IngestProgress",
    "ingest",
    "is_late_interaction",
    "page_embedding_text",
]

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


@dataclass(frozen=True, slots=True)
class IngestProgress:
    """Where an :func:`ingest` run stands; ``on_progress`` gets one after each embedded batch and source.

    Attributes:
        pages_done: pages loaded and embedded so far in this run (sources skipped as unchanged add none).
        pages_total: pages expected in all: each file's page count read up front (PDF page counts,
            image frames), each source's real count once it is done. Never below ``pages_done``.
        uncounted: URLs not done yet (their page count is known only once loaded): the total
            grows as they load.
        sources_done: sources finished (indexed, unchanged or failed).
        sources_total: sources in the run (folders expanded).
        source: the source being indexed, or just finished.
        result: the source's outcome, on the update sent when it finishes (else ``None``).
    """

    pages_done: int
    pages_total: int
    uncounted: int
    sources_done: int
    sources_total: int
    source: str | None = None
    result: SourceResult | None = None


def _page_count(source: str) -> int | None:
    """The pages ``source`` will give, read cheaply (PDF page count, image frames); ``None`` for a URL.

    A file that cannot be counted here (missing, damaged, encrypted) counts 0 until it is done.
    """
    from pagesight.documents.sources import IMAGE_EXTENSIONS, PDF_EXTENSIONS

    if is_url(source):
        return None
    suffix = Path(source).suffix.lower()
    try:
        if suffix in PDF_EXTENSIONS:
            import pymupdf

            with pymupdf.open(source) as doc:
                return int(doc.page_count)
        if suffix in IMAGE_EXTENSIONS:
            from PIL import Image

            with Image.open(source) as image:
                return int(getattr(image, "n_frames", 1))
    except Exception:  # unreadable here: the loader reports it; the total is corrected when it is done
        return 0
    return 0


class _Tracker:
    """Counts pages for ``on_progress``: the up-front total, corrected as each source finishes."""

    def __init__(self, sources: Sequence[str], on_progress: Callable[[IngestProgress], None]) -> None:
        self.on_progress = on_progress
        self.counts = [_page_count(s) for s in sources]
        self.total = sum(c or 0 for c in self.counts)
        self.uncounted = sum(c is None for c in self.counts)
        self.done = 0
        self.in_source = 0
        self.sources_done = 0
        self.sources_total = len(sources)

    def send(self, source: str | None, result: SourceResult | None = None) -> None:
        self.total = max(self.total, self.done)
        self.on_progress(
            IngestProgress(
                self.done, self.total, self.uncounted, self.sources_done, self.sources_total, source, result
            )
        )

    def pages(self, source: str, n: int) -> None:
        self.done += n
        self.in_source += n
        self.send(source)

    def finished(self, index: int, result: SourceResult) -> None:
        expected = self.counts[index]
        self.total += self.in_source - (expected or 0)  # the real count replaces the estimate
        self.uncounted -= expected is None
        self.in_source = 0
        self.sources_done += 1
        self.send(result.source, result)


class _Bar:
    """A progress bar that also reports each update to ``on_pages``."""

    def __init__(self, bar: Any, on_pages: Callable[[int], None] | None) -> None:
        self.bar = bar
        self.on_pages = on_pages

    def update(self, n: int) -> None:
        self.bar.update(n)
        if self.on_pages is not None:
            self.on_pages(n)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.bar.set_postfix_str(text, refresh=refresh)


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
    store: Store, source: str, content_hash: str, notes: tuple[str, ...] = (), *, force: bool = False
) -> SourceResult | None:
    """An ``unchanged`` result when another source already holds these bytes, else ``None``.

    Page ids derive from the content hash (one record per distinct page), so writing the same bytes
    under a second name would move the first name's pages to it, and re-indexing would move them back.

    A store written before names were made absolute holds a path as it was typed
    (``examples/x.pdf``): when that name is this file read from the current folder, it is the same
    source, ``unchanged`` without a warning (``force``, or an incomplete copy: ``None``, so it is
    written again under the absolute name, which moves its records; see :func:`_drop_old_spellings`).
    """
    owner = store.source_with_hash(content_hash)
    if owner is None or owner == source:
        return None
    if same_source(owner, source):
        info = None if force else store.source_info(owner)
        if info is None or info.content_hash != content_hash:
            return None
        return SourceResult(source, "unchanged", info.pages, warnings=notes)
    stored = len(store.pages(owner))  # that source's records only, not the whole store
    note = (
        f"{source} has the same bytes as {owner}, which is already indexed; its pages stay under "
        f"that name (delete {owner} first to index them as {source})"
    )
    return SourceResult(source, "unchanged", stored, warnings=(*notes, note))


def _old_spellings(name: str) -> list[str]:
    """Names an older pagesight may have stored ``name`` under: the path as typed from this folder."""
    if is_url(name) or not os.path.isabs(name):
        return []
    try:
        rel = os.path.relpath(name)
    except ValueError:  # another drive (Windows)
        return []
    return [n for n in dict.fromkeys([rel, os.path.join(os.curdir, rel)]) if n != name]


def _drop_old_spellings(store: Store, name: str) -> None:
    """After ``name`` is written, remove what an older store kept of it under another spelling."""
    for old in _old_spellings(name):
        if store.pages(old):
            removed = store.delete_source(old)
            logger.info("%s: removed %d pages stored under its old name %s", name, removed, old)


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
    on_pages: Callable[[int], None] | None = None,
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
        duplicate = _same_bytes_elsewhere(store, source, digest, force=force)
        if duplicate is not None:
            return duplicate
    # Stage page images beside the store's image folder so the store can hard-link them in place.
    store.image_dir.parent.mkdir(parents=True, exist_ok=True)
    # The pid in the name lets the store remove the folder if this process dies (see PageStore).
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{os.getpid()}-", dir=store.image_dir.parent))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with _progress(None, safe(Path(name).name or name), show_progress) as tqdm_bar:
                bar = _Bar(tqdm_bar, on_pages)
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
        _drop_old_spellings(store, name)
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
    on_progress: Callable[[IngestProgress], None] | None = None,
    executor: str | RayExecutor = "local",
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
        on_progress: called with an :class:`IngestProgress` (pages done and expected) after each
            embedded batch and each source, for one progress display over the whole run (what
            ``pagesight index`` shows); the page counts are read up front when it is given.
        executor: ``"local"`` (this process), ``"ray"`` (a local Ray instance, or the cluster
            ``$RAY_ADDRESS`` names) or a :class:`~pagesight.pipelines.distributed.RayExecutor`
            (cluster address, shared folder, workers): pages are loaded and embedded on Ray, with
            the same guarantees and report (see :mod:`pagesight.pipelines.distributed`).
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
    # One name per file whatever the spelling or the current folder: its absolute path (URLs as given)
    sources = [canonical_source(os.fsdecode(s)) for s in sources]
    ray_executor = as_executor(executor)
    if ray_executor is not None:
        return ingest_on_ray(
            sources,
            store,
            encoder,
            ray_executor,
            force=force,
            batch_size=batch_size,
            show_progress=show_progress,
            on_result=on_result,
            on_progress=on_progress,
            loader_options=loader_options,
        )
    report = IngestReport()
    said: set[str] = set()  # the "no OCR engine" warning is given once, not once per source
    expanded = expand_sources([os.fsdecode(s) for s in sources], exclude=_store_folders(store))
    tracker = _Tracker(expanded, on_progress) if on_progress is not None else None
    if tracker is not None:
        tracker.send(None)  # the total, before the first page
    for number, source in enumerate(expanded):
        try:
            result = _ingest_one(
                source,
                store,
                encoder,
                force=force,
                batch_size=batch_size,
                show_progress=show_progress,
                loader_options=loader_options,
                on_pages=partial(tracker.pages, source) if tracker is not None else None,
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
        if tracker is not None:
            tracker.finished(number, result)
    return report
