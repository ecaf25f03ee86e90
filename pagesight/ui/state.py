"""What the web app does, without the web: index uploads and URLs, answer questions, draw heatmaps.

:class:`App` holds one store and builds its encoder, searcher and generator on first use (under a
lock, so the app's worker threads share them). The Gradio layout in :mod:`pagesight.ui.app` only
formats what these methods return, so tests drive the app by calling them directly::

    app = App("index/")                                   # nothing opened or loaded yet
    for step in app.index_steps(["report.pdf"], ["https://example.org/a.pdf"]):
        print(step.name, step.result.status if step.result else "...")
    last = list(app.ask_steps("What is the deadline?"))[-1]
    print(last.text, [(c.source, c.page) for c in last.answer.citations])
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from pagesight._checks import check_choice, check_int
from pagesight.documents.sources import SUPPORTED_EXTENSIONS
from pagesight.errors import ConfigurationError, EmptyStoreError, PagesightError
from pagesight.pipelines.answer import Answer, StreamingGenerator, page_reference, resolve_citations
from pagesight.pipelines.ingest import SourceResult

if TYPE_CHECKING:
    from PIL import Image

    from pagesight.index import Index
    from pagesight.pipelines.answer import Generator
    from pagesight.profiles import Profile
    from pagesight.retrieval.search import PageSearcher
    from pagesight.retrieval.store import MultiVectorStore, PageStore
    from pagesight.types import Hit, SourceInfo

__all__ = [
    "App",
    "AskStep",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "IndexStep",
    "EmptyStoreError",
    "caption",
    "file_url",
    "log_line",
    "parse_urls",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 256 * 2**20
"""Largest file the web app accepts from the browser (``pagesight serve --max-upload-mb``)."""

EMPTY_STORE_MESSAGE = "The store is empty: add documents first (upload files or URLs, then Index)."


@dataclass(frozen=True, slots=True)
class IndexStep:
    """Progress of one indexing run: a source starts (``result is None``) or ends.

    Attributes:
        done: sources finished so far.
        total: sources in the run.
        name: what the log calls the source (the uploaded file's name, or the URL).
        result: the outcome, once the source is finished.
        note: on the first step of a run into a new store: which profile chose the embedder.
    """

    done: int
    total: int
    name: str
    result: SourceResult | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class AskStep:
    """The answer so far.

    Attributes:
        text: the answer text written so far (all of it on the last step).
        retrieved: the pages retrieved for the question, best first.
        answer: the finished answer with its resolved citations, on the last step only.
    """

    text: str
    retrieved: list[Hit] = field(default_factory=list)
    answer: Answer | None = None


def parse_urls(text: str | Sequence[str] | None) -> list[str]:
    """The non-empty lines of ``text`` (or the given list), stripped, duplicates dropped."""
    if text is None:
        return []
    lines = text.splitlines() if isinstance(text, str) else list(text)
    return list(dict.fromkeys(s.strip() for s in lines if s and s.strip()))


def log_line(step: IndexStep) -> str:
    """One line of the indexing log for a finished source, e.g. ``indexed  a.pdf (3 pages)``."""
    r = step.result
    if r is None:
        return f"indexing {step.name} ..."
    if r.status == "failed":
        line = f"failed     {step.name}: {r.error}"
    else:
        line = f"{r.status:<10} {step.name} ({r.pages} page{'s' if r.pages != 1 else ''})"
    return "\n".join([line, *(f"    warning: {w}" for w in r.warnings)])


def caption(hit: Hit, *, cited: bool = False) -> str:
    """A thumbnail's caption: ``"<file> p.<N> · <score>"``, with ``· cited`` for cited pages."""
    ref = page_reference(hit.source, hit.page, hit.page_label)
    return f"{ref} · {hit.score:.3f}" + (" · cited" if cited else "")


def file_url(path: str | Path) -> str:
    """The app's URL of a file it may serve (a page image in the store)."""
    return "/gradio_api/file=" + quote(str(Path(path).resolve()))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _CountingEncoder:
    """The encoder, telling ``on_pages`` how many pages each batch embedded (indexing progress).

    Everything but ``encode_pages`` (what ingest calls) goes straight to the wrapped encoder.
    """

    def __init__(self, encoder: Any, on_pages: Callable[[int], None]) -> None:
        self._encoder = encoder
        self._on_pages = on_pages

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)

    def encode_pages(self, pages: Sequence[Any]) -> Any:
        vectors = self._encoder.encode_pages(pages)
        self._on_pages(len(pages))
        return vectors


class _Upload:
    """An uploaded file copied into the store's ``uploads/`` folder, undone if indexing it fails.

    A file of the same name already there is kept aside and put back when the new one fails, so a
    bad re-upload never leaves the store pointing at a file that is gone.
    """

    def __init__(self, src: Path, dest: Path) -> None:
        self.dest = dest
        self._backup: Path | None = None
        self._created = False
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists() and dest.stat().st_size == src.stat().st_size and _sha256(dest) == _sha256(src):
            return  # same bytes: ingest reports it unchanged
        fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=dest.parent)
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            if dest.exists():
                fd, backup = tempfile.mkstemp(prefix=".previous-", dir=dest.parent)
                os.close(fd)
                os.replace(dest, backup)
                self._backup = Path(backup)
            os.replace(tmp, dest)
            self._created = True
        finally:
            Path(tmp).unlink(missing_ok=True)

    def finish(self, ok: bool) -> None:
        if ok:
            if self._backup is not None:
                self._backup.unlink(missing_ok=True)
            return
        if self._backup is not None:
            os.replace(self._backup, self.dest)
        elif self._created:
            self.dest.unlink(missing_ok=True)


class App:
    """The state behind ``pagesight serve``: one :class:`~pagesight.index.Index` and the web app's options.

    Everything is built on first use, so constructing an ``App`` is cheap. An empty store gets its
    embedder from ``profile`` when the first documents are indexed (``Index.create``); a store that
    holds pages is read with the embedder it records (``Index.open``).

    Args:
        store: store folder (created if missing) or ``http://host:port`` of a Chroma server.
        profile: for a new store, which stack indexes uploads (``offline``, ``offline-late``,
            ``ollama``, ``gpu``; ``None`` or ``"auto"``: ``gpu`` when ready, else ``offline``). A
            named profile also supplies the generator and reranker when those are not given.
        generator: ``extractive``, ``ollama:<model>`` or ``hf:<model>`` (``None``: the named
            profile's generator, else ``extractive``).
        ollama_host: Ollama server for ``ollama:`` generators.
        reranker: reranker name, or ``"none"``; ``None``: the named profile's.
        k: pages retrieved per question.
        trust_remote_code: allow models' own code (the NVIDIA models need it).
        mode: retrieval mode: ``hybrid``, ``dense`` or ``bm25``.
        dpi: page image resolution for indexed PDFs.
        loader_options: more options for the loaders of indexed files and URLs (``max_pages``,
            ``max_pixels``, ``max_chars_per_page``, ``max_bytes``, ``allow_private``, ...; see
            :func:`pagesight.documents.load_source`). URLs to private addresses are refused unless
            ``allow_private`` is true (or ``PAGESIGHT_ALLOW_PRIVATE_URLS=1``).
        max_upload_bytes: largest file the browser may upload (:data:`DEFAULT_MAX_UPLOAD_BYTES`);
            ``None`` for no limit.
        store_options: for a Chroma server store, ``headers``, ``tenant`` and ``database`` (see
            :func:`pagesight.pipelines.stores.open_store`).

    Example:
        >>> app = App("index/", generator="extractive")  # doctest: +SKIP
        >>> [s.result.status for s in app.index_steps(["a.pdf"], []) if s.result]  # doctest: +SKIP
        ['indexed']
    """

    def __init__(
        self,
        store: str | Path,
        *,
        profile: str | None = None,
        generator: str | None = None,
        ollama_host: str | None = None,
        reranker: str | None = None,
        k: int = 5,
        trust_remote_code: bool = False,
        mode: str = "hybrid",
        dpi: int = 96,
        loader_options: Mapping[str, Any] | None = None,
        max_upload_bytes: int | None = DEFAULT_MAX_UPLOAD_BYTES,
        store_options: Mapping[str, Any] | None = None,
    ) -> None:
        check_int("k", k, least=1)
        check_choice("mode", mode, ("hybrid", "dense", "bm25"))
        self.location = str(store)
        self.profile_name = profile
        self.generator_spec = generator
        self.ollama_host = ollama_host
        self.reranker_name = reranker
        self.k = k
        self.trust_remote_code = trust_remote_code
        self.mode = mode
        self.dpi = dpi
        check_int("max_upload_bytes", max_upload_bytes, least=1, optional=True)
        self.loader_options: dict[str, Any] = dict(loader_options or {})
        self.max_upload_bytes = max_upload_bytes
        self._store_options: dict[str, Any] = dict(store_options or {})
        self._lock = threading.RLock()
        self._index_lock = threading.Lock()
        self._index: Index | None = None
        self._encoder: Any = None  # what indexing embeds with, once chosen

    # -- configuration ---------------------------------------------------------------------------

    def _named_profile(self) -> Profile | None:
        from pagesight.profiles import resolve_profile

        if self.profile_name in (None, "auto"):
            return None
        return resolve_profile(self.profile_name)[0]

    def _trusted(self) -> bool:
        profile = self._named_profile()
        return bool(self.trust_remote_code or (profile and profile.trust_remote_code))

    @property
    def generator_name(self) -> str:
        """The generator spec in use (``extractive`` unless told or the named profile says otherwise)."""
        profile = self._named_profile()
        return self.generator_spec or (profile.generator if profile else "extractive")

    @property
    def store_index(self) -> Index:
        """The store with its models (opened on first use; a missing folder is created)."""
        with self._lock:
            if self._index is None:
                from pagesight.index import Index

                self._index = Index.open(
                    self.location,
                    must_exist=False,
                    trust_remote_code=self._trusted(),
                    ollama_host=self.ollama_host,
                    **self._store_options,
                )
            return self._index

    @property
    def store(self) -> PageStore | MultiVectorStore:
        """The store (opened on first use; a missing folder is created)."""
        return self.store_index.store

    @property
    def image_dir(self) -> Path:
        """Where the store keeps page images (the only files the web app serves)."""
        return self.store.image_dir.resolve()

    @property
    def uploads_dir(self) -> Path:
        """Where uploaded files are kept (``<store>/uploads``), so citations name them."""
        return self.store.image_dir.parent / "uploads"

    @property
    def late_interaction(self) -> bool:
        """Whether the store holds token vectors (MaxSim), or will once the named profile indexes."""
        info = self.store.embedder
        if info is not None:
            return info.kind == "late-interaction"
        profile = self._named_profile()
        if profile is None:
            return False
        from pagesight.profiles import is_late_interaction_model

        return is_late_interaction_model(profile.embedder)

    def sources(self) -> list[SourceInfo]:
        """The indexed sources and their page counts."""
        return self.store.sources()

    def describe(self) -> str:
        """One line: the store, its embedder and the generator."""
        info = self.store.embedder
        embedder = info.describe() if info else "none yet (set by the first documents indexed)"
        return f"store {self.location} · embedder: {embedder} · answers: {self.generator_name}"

    # -- indexing --------------------------------------------------------------------------------

    def _writer(self) -> tuple[PageStore | MultiVectorStore, Any, str | None]:
        """The store and encoder to index with, and a note when a profile was chosen for a new store."""
        with self._lock:
            index = self.store_index
            if self._encoder is not None:
                return index.store, self._encoder, None
            if index.store.embedder is not None:
                self._encoder = index.encoder
                return index.store, self._encoder, None
            from pagesight.index import Index

            created = Index.create(
                self.location,
                profile=self.profile_name,
                trust_remote_code=self.trust_remote_code,
                ollama_host=self.ollama_host,
                **self._store_options,
            )
            index.close()
            self._index = created
            self._encoder = created.encoder
            profile = created.profile
            description = profile.description if profile is not None else ""
            return created.store, self._encoder, f"new store: {created.profile_reason} — {description}"

    def _sources_to_index(
        self, files: Iterable[str | Path], urls: Sequence[str]
    ) -> list[tuple[str, Path | str]]:
        """(display name, uploaded path or URL) for each input, names made unique within the run."""
        out: list[tuple[str, Path | str]] = []
        taken: dict[str, Path] = {}
        for f in files:
            path = Path(f)
            name = path.name
            stem, suffix = path.stem, path.suffix
            n = 2
            while name in taken and taken[name] != path:
                name, n = f"{stem} ({n}){suffix}", n + 1
            taken[name] = path
            out.append((name, path))
        from pagesight.documents.url import redact_url

        out += [(redact_url(u), u) for u in urls]  # the log never shows a URL's password
        return out

    def index_steps(
        self,
        files: Iterable[str | Path] | None,
        urls: str | Sequence[str] | None = None,
        *,
        on_pages: Callable[[str, int], None] | None = None,
        force: bool = False,
    ) -> Iterator[IndexStep]:
        """Index uploaded files and URLs one by one, yielding when each starts and ends.

        Files are copied into :attr:`uploads_dir` under their own names first (so answers cite
        ``report.pdf``, not a temporary name). A source that fails is reported with its error and
        leaves nothing behind (no pages, no uploaded copy); the others go on.

        Args:
            files: paths of uploaded files (.pdf, .png, .jpg, .jpeg, .tif, .tiff, .webp).
            urls: http(s) URLs, as a list or one per line.
            on_pages: called as ``on_pages(name, pages embedded so far)`` after each batch of a
                source's pages is embedded (the web app's progress bar).
            force: re-index sources whose bytes did not change.

        Raises:
            PagesightError: a problem that concerns every source (the model cannot be loaded, the
                store was built with another embedder); nothing more is indexed.
        """
        todo = self._sources_to_index(files or [], parse_urls(urls))
        total = len(todo)
        if not total:
            return
        with self._index_lock:
            store, encoder, note = self._writer()
            if note:
                logger.info(note)
            for done, (name, item) in enumerate(todo):
                yield IndexStep(done, total, name, note=None if done else note)
                counted = encoder
                if on_pages is not None:
                    embedded = [0]

                    def count(n: int, name: str = name, embedded: list[int] = embedded) -> None:
                        embedded[0] += n
                        on_pages(name, embedded[0])

                    counted = _CountingEncoder(encoder, count)
                result = self._index_one(name, item, store, counted, force=force)
                self.store_index.refresh()  # BM25 sees the new pages
                yield IndexStep(done + 1, total, name, result)

    def index(
        self, files: Iterable[str | Path] | None, urls: str | Sequence[str] | None = None, **options: Any
    ) -> list[SourceResult]:
        """Index ``files`` and ``urls`` (see :meth:`index_steps`) and return one result per source."""
        return [s.result for s in self.index_steps(files, urls, **options) if s.result is not None]

    def _index_one(
        self,
        name: str,
        item: Path | str,
        store: PageStore | MultiVectorStore,
        encoder: Any,
        *,
        force: bool,
    ) -> SourceResult:
        from pagesight.pipelines.ingest import ingest

        if isinstance(item, str):  # a URL
            scheme = urlsplit(item).scheme.lower()
            if scheme not in ("http", "https"):
                return SourceResult(name, "failed", error="not an http(s) URL; upload local files instead")
            source = item
            upload = None
        else:
            if item.suffix.lower() not in SUPPORTED_EXTENSIONS:
                kinds = ", ".join(sorted(SUPPORTED_EXTENSIONS))
                return SourceResult(
                    name, "failed", error=f"unsupported file type {item.suffix or '(none)'!r}; upload {kinds}"
                )
            if not item.is_file():
                return SourceResult(name, "failed", error="the uploaded file is gone; upload it again")
            try:
                upload = _Upload(item, self.uploads_dir / name)
            except OSError as e:
                return SourceResult(name, "failed", error=f"could not copy the upload into the store: {e}")
            source = str(upload.dest)
        results: list[SourceResult] = []
        try:
            ingest(
                [source],
                store,
                encoder,
                force=force,
                show_progress=False,
                on_result=results.append,
                **{"dpi": self.dpi, **self.loader_options},
            )
        finally:
            ok = bool(results) and results[0].status != "failed"
            if upload is not None:
                upload.finish(ok)
        if not results:
            return SourceResult(source, "failed", error="nothing to index")
        result = results[0]

        def shown(text: str) -> str:  # name the file as the user knows it
            return text.replace(str(upload.dest), name) if upload is not None else text

        error = shown(result.error).removeprefix(f"{name}: ") if result.error else None
        # ingest records every warning raised while the source loads, from any thread: keep the
        # ones about this source (the loaders' notes name it), not the web server's own
        notes = tuple(shown(w) for w in result.warnings if result.source in w)  # a URL: its stored name
        return SourceResult(result.source, result.status, result.pages, error, notes)

    # -- asking ----------------------------------------------------------------------------------

    def _reader(self) -> tuple[PageSearcher, Generator]:
        with self._lock:
            index = self.store_index
            if index.store.embedder is None:
                raise EmptyStoreError(EMPTY_STORE_MESSAGE)
            if self._encoder is None:
                self._encoder = index.encoder
            searcher = index.searcher(self.mode, self._reranker_name())  # type: ignore[arg-type]
            return searcher, index.generator(self.generator_name)

    def _reranker_name(self) -> str:
        profile = self._named_profile()
        return self.reranker_name or (profile.reranker if profile else None) or "none"

    def ask_steps(self, question: str) -> Iterator[AskStep]:
        """Answer ``question``: yield the retrieved pages, then the answer as it is written.

        The first step carries the retrieved pages and no text; a streaming generator adds a step
        per piece; the last step carries the finished :class:`Answer`.

        Raises:
            EmptyStoreError: nothing is indexed yet.
            ConfigurationError: an empty question or a wrong option.
            PagesightError: the generator or a model cannot run (the message says why).
        """
        question = (question or "").strip()
        if not question:
            raise ConfigurationError("type a question first")
        searcher, generator = self._reader()
        check = getattr(generator, "check", None)
        if callable(check):
            check()  # Ollama down or the model not pulled: say so before retrieving
        retrieved = searcher.search(question, k=self.k)
        yield AskStep("", retrieved)
        if isinstance(generator, StreamingGenerator):
            text = ""
            for piece in generator.stream(question, retrieved):
                text += piece
                yield AskStep(text, retrieved)
        else:
            text = generator.generate(question, retrieved)
        yield AskStep(text, retrieved, resolve_citations(question, text, retrieved))

    def ask(self, question: str) -> Answer:
        """Answer ``question`` (see :meth:`ask_steps`)."""
        for step in self.ask_steps(question):
            if step.answer is not None:
                return step.answer
        raise PagesightError("the generator gave no answer")  # not reached: ask_steps ends with one

    # -- heatmaps --------------------------------------------------------------------------------

    def heatmap(self, question: str, hit: Hit) -> tuple[Image.Image | None, str]:
        """The page image with the regions that matched ``question`` highlighted, and a note.

        Only late-interaction stores have token similarities to map onto the page; the note says
        why there is no heatmap otherwise (another kind of store, or a model whose tokens cannot
        be located on the page).
        """
        if not self.late_interaction:
            return None, "Heatmaps need a late-interaction store (token vectors, MaxSim)."
        try:
            from pagesight.retrieval.heatmap import page_heatmap
        except ImportError:
            return None, "Heatmaps are not available in this version of pagesight."
        self._reader()
        source = Path(hit.source)
        source_path = source if source.is_file() else None
        image = page_heatmap(self._encoder, question, hit, source_path=source_path)
        if image is None:
            return None, "No heatmap for this model: its tokens cannot be located on the page."
        return image, "Heatmap: warmer regions matched the question more strongly (MaxSim)."
