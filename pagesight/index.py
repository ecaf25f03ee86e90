"""``Index``: one page store and the models that write, search and question it.

The CLI, the web app and the chain and query-engine builders all go through this class, so
"open the store, pick its encoder, build a searcher" is written once::

    from pagesight import Index

    with Index.create("store", profile="offline") as index:    # new or existing store
        report = index.add(["examples/"])                       # IngestReport, one result per source
        hits = index.search("floating point equality", k=3)     # list[Hit], best first
        result = index.ask("Why is sqrt(2) squared not exactly 2 in R?")   # Answer with citations

    index = Index.open("store")      # an existing store: the embedder it records picks the encoder

Nothing is opened or loaded by the constructors: the store opens on first use, the encoder's
weights load on the first embedding, and each searcher (one per mode and reranker) is built once
and refreshed after :meth:`Index.add` and :meth:`Index.delete`, so BM25 sees the new pages.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from pagesight._checks import check_choice
from pagesight.errors import ConfigurationError, EmptyStoreError, StoreNotFoundError
from pagesight.types import Hit, Kind, PageInput, SourceInfo, as_kind

if TYPE_CHECKING:
    from types import TracebackType

    from pagesight.integrations.langchain.retrievers import PageRetriever
    from pagesight.integrations.llama_index.query_engine import PageQueryEngine
    from pagesight.integrations.llama_index.retrievers import PageNodeRetriever
    from pagesight.models.base import DensePageEncoder, DenseTextEncoder, EmbedderInfo, LateInteractionEncoder
    from pagesight.models.rerank import Reranker
    from pagesight.pipelines.answer import Answer, Generator
    from pagesight.pipelines.ingest import IngestReport, SourceResult
    from pagesight.profiles import Profile
    from pagesight.retrieval.cluster import Cluster
    from pagesight.retrieval.search import Mode, PageSearcher
    from pagesight.retrieval.store import MultiVectorStore, PageStore, StoreHealth

    Encoder = DenseTextEncoder | DensePageEncoder | LateInteractionEncoder
    Store = PageStore | MultiVectorStore

__all__ = ["Index", "OpenOptions", "ServerOptions"]

MODES = ("hybrid", "dense", "bm25")


class ServerOptions(TypedDict, total=False):
    """How to reach a Chroma server store (``http(s)://host:port``); unset, the environment decides.

    See :func:`pagesight.pipelines.stores.server_options` (``$PAGESIGHT_CHROMA_HEADERS``,
    ``$CHROMA_TENANT``, ``$CHROMA_DATABASE``).
    """

    headers: Mapping[str, str] | None
    """HTTP headers for every request, e.g. ``{"Authorization": "Bearer TOKEN"}``."""
    tenant: str | None
    """The tenant (``default_tenant`` when unset)."""
    database: str | None
    """The database (``default_database`` when unset)."""


class OpenOptions(ServerOptions, total=False):
    """The options of :meth:`Index.open` (the constructor's; see :class:`Index`)."""

    encoder: Any
    profile: str | Profile | None
    trust_remote_code: bool
    must_exist: bool
    ollama_host: str | None


@dataclass(frozen=True, slots=True)
class _Plan:
    """The encoder :meth:`Index.create` writes with, and the options of a late-interaction store."""

    model: str
    kind: Kind
    page_input: PageInput
    dimensions: int | None
    late_options: dict[str, Any] = field(default_factory=dict)


def _missing_store(where: str) -> StoreNotFoundError:
    return StoreNotFoundError(
        f"no store at {where}; create one with: pagesight index SOURCES... --store {where}"
    )


def _is_url(where: str) -> bool:
    from pagesight.retrieval.store import is_store_url

    return is_store_url(where)


class Index:
    """A page store with its encoder, searchers, rerankers and generators, built on first use.

    Use :meth:`open` for a store that exists and :meth:`create` to make one (or to add to one
    with a chosen model); the constructor is :meth:`open`'s, with ``must_exist``.

    Args:
        location: a store folder, ``http(s)://host:port`` of a Chroma server, or an open
            :class:`~pagesight.retrieval.store.PageStore` /
            :class:`~pagesight.retrieval.multivector.MultiVectorStore` (not closed by :meth:`close`).
        encoder: the encoder to search (and write) with; ``None``: the one the store records.
        profile: a profile (name or :class:`~pagesight.profiles.Profile`) whose reranker,
            generator and remote-code consent are the defaults.
        trust_remote_code: allow the models' own code (the NVIDIA models need it).
        must_exist: refuse a folder that holds no store (otherwise it is created on first use).
        ollama_host: the Ollama server for ``ollama:`` generators.
        **server: Chroma server stores: ``headers``, ``tenant``, ``database`` (:class:`ServerOptions`).

    Raises:
        StoreNotFoundError: ``must_exist`` and no store folder is at ``location``.
        ConfigurationError: an unknown profile.
    """

    def __init__(
        self,
        location: str | Path | Store,
        *,
        encoder: Any = None,
        profile: str | Profile | None = None,
        trust_remote_code: bool = False,
        must_exist: bool = True,
        ollama_host: str | None = None,
        **server: Unpack[ServerOptions],
    ) -> None:
        self._lock = threading.RLock()
        self._store: Store | None = None
        self._owns_store = True
        if isinstance(location, (str, Path)):
            self._where = str(location)
            if must_exist and not _is_url(self._where) and not Path(self._where).is_dir():
                raise _missing_store(self._where)
        else:
            self._store, self._owns_store = location, False
            self._where = location.location
        self.profile: Profile | None = _profile(profile)
        self.profile_reason: str | None = None
        """Why :meth:`create` chose its profile (``"auto chose 'offline': ..."``)."""
        self.trust_remote_code = bool(trust_remote_code or (self.profile and self.profile.trust_remote_code))
        self.ollama_host = ollama_host
        self._must_exist = must_exist
        self._server: dict[str, Any] = {"headers": None, "tenant": None, "database": None, **server}
        self._encoder: Any = encoder
        self._plan: _Plan | None = None
        self._searchers: dict[tuple[Any, ...], PageSearcher] = {}
        self._rerankers: dict[str, Reranker] = {}
        self._generators: dict[str, Generator] = {}

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def open(cls, location: str | Path | Store, **options: Unpack[OpenOptions]) -> Index:
        """An existing store, searched with the embedder it records (the options are the class's).

        Raises:
            StoreNotFoundError: no store folder at ``location`` (unless ``must_exist=False``).
        """
        return cls(location, **options)

    @classmethod
    def create(
        cls,
        location: str | Path,
        *,
        profile: str | Profile | None = None,
        model: str | None = None,
        kind: Kind | None = None,
        page_input: PageInput = "auto",
        dimensions: int | None = None,
        storage: str | None = None,
        pool_factor: int | None = None,
        summary: str | None = None,
        candidates_from: str | None = None,
        trust_remote_code: bool = False,
        ollama_host: str | None = None,
        **server: Unpack[ServerOptions],
    ) -> Index:
        """A store to add pages to with the encoder ``profile`` and ``model`` choose.

        The store is created on first use when missing; an existing store refuses pages from
        another embedder (:class:`~pagesight.errors.StoreMismatchError`, on :meth:`add`).

        Args:
            location: store folder or ``http(s)://host:port`` of a Chroma server.
            profile: ``offline``, ``offline-late``, ``ollama``, ``gpu`` or ``auto`` (``None``: auto,
                which picks ``gpu`` only with CUDA, cached weights and ``trust_remote_code``).
            model: the embedder (alias, Hub id, folder, ``ollama:NAME``); ``None``: the profile's.
            kind: ``"dense-text"``, ``"dense-vl"`` or ``"late-interaction"`` when the model's kind
                cannot be told from its name.
            page_input: vision-language and late-interaction models: what of a page is embedded.
            dimensions: Matryoshka truncation (dense models).
            storage: late interaction: token storage (``float16``, ``float32``, ``int8``).
            pool_factor: late interaction: pool tokens by this factor.
            summary: late interaction: candidate vectors (``mean`` or ``muvera``).
            candidates_from: late interaction: where two-stage search takes its candidates,
                ``"summary"`` (the summary vectors, default) or ``"centroids"`` (a token-level
                centroid index, PLAID-style; see README "Late interaction at scale").
            trust_remote_code: allow the models' own code (the ``gpu`` profile allows it itself).
            ollama_host: the Ollama server for ``ollama:`` generators.
            **server: Chroma server stores: ``headers``, ``tenant``, ``database`` (:class:`ServerOptions`).

        Raises:
            ConfigurationError: an unknown profile or kind, or an option that does not apply to
                the model's kind.
        """
        from pagesight.profiles import Profile, embedder_kind, resolve_profile

        if isinstance(profile, Profile):
            chosen, why = profile, f"profile '{profile.name}' as given"
        else:
            chosen, why = resolve_profile(profile, trust_remote_code=trust_remote_code)
        name = model or chosen.embedder
        kind = as_kind(kind) if kind is not None else embedder_kind(name)
        check_choice("page_input", page_input, ("auto", "image", "text", "image_text"))
        late = kind == "late-interaction"
        if page_input != "auto" and kind == "dense-text":
            raise ConfigurationError("`page_input` applies to vision-language and late-interaction models")
        if late and dimensions is not None:
            raise ConfigurationError("`dimensions` applies to dense embedders, not late interaction")
        if not late and (storage or pool_factor or summary or candidates_from):
            raise ConfigurationError(
                "`storage`, `pool_factor`, `summary` and `candidates_from` apply to late-interaction models"
            )
        index = cls(
            location,
            profile=chosen,
            trust_remote_code=trust_remote_code,
            must_exist=False,
            ollama_host=ollama_host,
            **server,
        )
        index.profile_reason = why
        options = (
            {
                "storage": storage,
                "pool_factor": pool_factor,
                "summary": summary,
                "candidates_from": candidates_from,
            }
            if late
            else {}
        )
        index._plan = _Plan(name, kind, page_input, dimensions, options)
        return index

    # -- the store and its models ----------------------------------------------------------------

    @property
    def location(self) -> str:
        """The store's folder or server URL, as messages name it (a URL without its password)."""
        if self._store is not None:
            return self._store.location
        from pagesight.documents.url import redact_url

        return redact_url(self._where)

    @property
    def store(self) -> Store:
        """The page store (opened on first use; created when :meth:`create` names a new folder)."""
        with self._lock:
            if self._store is None:
                from pagesight.retrieval.store import open_multivector_store, open_store

                plan = self._plan
                if plan is not None and plan.kind == "late-interaction":
                    self._store = open_multivector_store(self._where, **self._server, **plan.late_options)
                else:
                    self._store = open_store(self._where, must_exist=self._must_exist, **self._server)
            return self._store

    @property
    def embedder(self) -> EmbedderInfo | None:
        """The embedder the store records (``None`` while it is empty)."""
        return self.store.embedder

    @property
    def encoder(self) -> Encoder:
        """The encoder (constructed on first use; its weights load on the first embedding).

        :meth:`create`'s model, else the one given to :meth:`open`, else the one the store records.

        Raises:
            EmptyStoreError: the store is empty and no encoder was chosen.
        """
        with self._lock:
            if self._encoder is None:
                plan = self._plan
                if plan is not None:
                    from pagesight.profiles import page_encoder

                    self._encoder = page_encoder(
                        plan.model,
                        plan.kind,
                        trust_remote_code=self.trust_remote_code,
                        page_input=plan.page_input,
                        dimensions=plan.dimensions,
                    )
                else:
                    store = self.store
                    if store.embedder is None:
                        where = store.location
                        raise EmptyStoreError(
                            f"store {where} is empty; index documents first: pagesight index SOURCES... "
                            f"--store {where}"
                        )
                    from pagesight.pipelines.stores import store_encoder

                    self._encoder = store_encoder(store, trust_remote_code=self.trust_remote_code)
            return self._encoder

    def reranker(self, reranker: str | Reranker | None = None) -> Reranker | None:
        """The reranker ``reranker`` names or is (``None``: the profile's; ``"none"``: no reranker).

        A named reranker is built once per index.

        Raises:
            ConfigurationError: ``reranker`` is not a name, a reranker or ``None``.
        """
        if reranker is None:
            reranker = self.profile.reranker if self.profile is not None else None
        if reranker is None or reranker == "none":
            return None
        if not isinstance(reranker, str):
            if not callable(getattr(reranker, "rerank", None)):
                raise ConfigurationError(
                    "`reranker` must be a reranker name or a pagesight Reranker, "
                    f"got {type(reranker).__name__}"
                )
            return reranker
        with self._lock:
            if reranker not in self._rerankers:
                from pagesight.models.rerank import Reranker

                self._rerankers[reranker] = Reranker(reranker, trust_remote_code=self.trust_remote_code)
            return self._rerankers[reranker]

    def searcher(
        self,
        mode: Mode = "hybrid",
        reranker: str | Reranker | None = None,
        *,
        exhaustive: bool = False,
        rerank_candidates: int = 20,
        maxsim_candidates: int | None = None,
        maxsim_device: str | None = None,
    ) -> PageSearcher:
        """The searcher for ``mode`` and ``reranker`` (built once; see :meth:`search`).

        ``maxsim_candidates`` and ``maxsim_device`` are
        :class:`~pagesight.retrieval.search.PageSearcher`'s (late interaction).

        Raises:
            EmptyStoreError: the store is empty (``"bm25"`` mode needs no encoder and finds nothing).
            ConfigurationError: an unknown mode or reranker.
        """
        check_choice("mode", mode, MODES)
        model = self.reranker(reranker)
        key = (
            mode,
            exhaustive,
            id(model) if model is not None else None,
            rerank_candidates,
            maxsim_candidates,
            maxsim_device,
        )
        with self._lock:
            if key not in self._searchers:
                from pagesight.retrieval.search import PageSearcher

                self._searchers[key] = PageSearcher(
                    self.store,
                    None if mode == "bm25" else self.encoder,
                    mode=mode,
                    exhaustive=exhaustive,
                    reranker=model,
                    rerank_candidates=rerank_candidates,
                    maxsim_candidates=maxsim_candidates,
                    maxsim_device=maxsim_device,
                )
            return self._searchers[key]

    @property
    def default_generator(self) -> str:
        """The generator :meth:`ask` uses when none is given: the profile's, else ``"extractive"``."""
        return self.profile.generator if self.profile is not None else "extractive"

    def generator(self, spec: str | None = None, **options: Any) -> Generator:
        """The generator ``spec`` names: ``extractive``, ``ollama:<model>`` or ``hf:<model>``.

        Built once per spec when no ``options`` are given (``options`` go to the generator's
        constructor: ``max_images``, ``max_new_tokens``, ...).

        Raises:
            ConfigurationError: an unknown spec.
            EmptyStoreError: ``extractive`` on an empty store (it scores passages with the encoder).
        """
        from pagesight.models.generate import make_generator, parse_generator_spec

        spec = spec or self.default_generator
        kind, _ = parse_generator_spec(spec)
        with self._lock:
            made = self._generators.get(spec) if not options else None
            if made is None:
                made = make_generator(
                    spec,
                    encoder=self.encoder if kind == "extractive" else None,
                    ollama_host=self.ollama_host,
                    trust_remote_code=self.trust_remote_code,
                    **options,
                )
                if not options:
                    self._generators[spec] = made
            return made

    # -- reading ---------------------------------------------------------------------------------

    def search(
        self,
        query: str = "",
        k: int = 10,
        mode: Mode = "hybrid",
        reranker: str | Reranker | None = None,
        *,
        exhaustive: bool = False,
        rerank_candidates: int = 20,
        source: str | None = None,
        image: Any = None,
    ) -> list[Hit]:
        """The ``k`` pages that best match ``query`` (or ``image``), best first.

        Args:
            query: what to look for (a blank query finds nothing, unless ``image`` is given).
            k: pages to return.
            mode: ``"hybrid"`` (dense fused with BM25), ``"dense"`` or ``"bm25"``.
            reranker: a reranker name or :class:`~pagesight.models.rerank.Reranker` that re-scores
                the first ``rerank_candidates`` pages (``score`` is then its relevance); ``None``:
                the profile's; ``"none"``: no reranker.
            exhaustive: late interaction: MaxSim over every page, not only the candidates.
            rerank_candidates: pages the reranker sees.
            source: only pages of this source: a URL, or a local path spelled any way that names
                the file from the current folder (``examples/x.pdf``, ``./examples/x.pdf``, absolute).
            image: search by an image: a file path, a ``PIL.Image.Image`` or encoded image bytes.
                The store's model must embed images (dense vision-language, late-interaction image
                models); ``"hybrid"`` fuses it with BM25 on ``query`` when ``query`` has words.

        Raises:
            EmptyStoreError: nothing is indexed yet.
            ImageQueryError: ``image`` on a store whose model embeds text only.
        """
        searcher = self.searcher(mode, reranker, exhaustive=exhaustive, rerank_candidates=rerank_candidates)
        return searcher.search(query, k=k, source=source, image=image)

    def ask(
        self,
        question: str,
        generator: str | Generator | None = None,
        k: int = 5,
        *,
        mode: Mode = "hybrid",
        reranker: str | Reranker | None = None,
        exhaustive: bool = False,
        rerank_candidates: int = 20,
        on_token: Callable[[str], None] | None = None,
    ) -> Answer:
        """Answer ``question`` from the ``k`` best pages, with citations.

        Args:
            question: the question.
            generator: ``None`` (the profile's, else ``"extractive"``: the best passages, quoted),
                ``"ollama:<model>"``, ``"hf:<model>"`` or a generator object.
            k: pages retrieved and given to the generator.
            mode, reranker, exhaustive, rerank_candidates: as :meth:`search`'s.
            on_token: called with each piece of the answer as a streaming generator writes it.

        Returns:
            An :class:`~pagesight.pipelines.answer.Answer`: ``text``, ``citations`` (the cited
            pages among those retrieved), ``unmatched_citations`` and ``retrieved``.
        """
        from pagesight.pipelines.answer import answer

        searcher = self.searcher(mode, reranker, exhaustive=exhaustive, rerank_candidates=rerank_candidates)
        writer = self.generator(generator) if generator is None or isinstance(generator, str) else generator
        return answer(question, searcher, writer, k=k, on_token=on_token)

    def sources(self) -> list[SourceInfo]:
        """The indexed sources with their page counts."""
        return self.store.sources()

    def cluster(self, n: int, *, seed: int = 0, terms: int = 5) -> list[Cluster]:
        """Group the pages into ``n`` clusters by their page vectors (k-means), each named by its
        ``terms`` most distinctive terms; largest cluster first (see :mod:`pagesight.retrieval.cluster`).

        Raises:
            EmptyStoreError: nothing is indexed yet.
            ConfigurationError: ``n`` is below 1 or above the number of pages.
            MissingDependencyError: scikit-learn is missing (``pip install "pagesight[cluster]"``).
        """
        from pagesight.retrieval.cluster import cluster_pages

        return cluster_pages(self.store, n, seed=seed, terms=terms)

    # -- framework objects (imported on use; a missing framework names its pip extra) -------------

    def as_langchain_retriever(self, **options: Any) -> PageRetriever:
        """A LangChain retriever searching this index, as :meth:`search` does.

        ``options`` are :class:`~pagesight.integrations.langchain.PageRetriever`'s fields: ``k``
        (4), ``mode``, ``reranker`` (``None``: the profile's), ``source``, ``exhaustive``, ...

        Raises:
            ImportError: langchain-core is not installed (the message names
                ``pip install "pagesight[langchain]"``).
        """
        from pagesight.integrations import PageRetriever

        return PageRetriever(index=self, **options)

    def as_llamaindex_retriever(self, **options: Any) -> PageNodeRetriever:
        """A LlamaIndex retriever searching this index, as :meth:`search` does.

        ``options`` are :class:`~pagesight.integrations.llama_index.PageNodeRetriever`'s:
        ``similarity_top_k``, ``mode``, ``reranker`` (``None``: the profile's), ``source``, ...

        Raises:
            ImportError: llama-index-core is not installed (the message names
                ``pip install "pagesight[llamaindex]"``).
        """
        from pagesight.integrations import PageNodeRetriever

        return PageNodeRetriever(self, **options)

    def as_chain(self, llm: Any, **options: Any) -> Any:
        """A LangChain (LCEL) chain answering questions from this index's pages with ``llm``.

        ``options`` are :func:`~pagesight.integrations.langchain.chain.build_langchain_chain`'s
        (``k``, ``mode``, ``images``, ``reranker`` (``None``: the profile's), ...). The chain
        returns ``{"question", "answer", "citations", "unmatched_citations", "retrieved"}``.

        Raises:
            ImportError: langchain-core is not installed (names the pip extra).
            ConfigurationError: ``llm`` is not a LangChain model (without one, use :meth:`ask`).
        """
        from pagesight.integrations import build_langchain_chain

        options.setdefault("reranker", self.reranker(None))
        options.setdefault("trust_remote_code", self.trust_remote_code)
        return build_langchain_chain(llm, store=self, **options)

    def as_query_engine(self, llm: Any = None, **options: Any) -> PageQueryEngine:
        """A LlamaIndex query engine answering questions from this index's pages with ``llm``.

        ``llm=None`` takes LlamaIndex's ``Settings.llm``. ``options`` are
        :func:`~pagesight.integrations.llama_index.query_engine.build_llamaindex_query_engine`'s
        (``k``, ``mode``, ``images``, ``reranker`` (``None``: the profile's), ``streaming``, ...).

        Raises:
            ImportError: llama-index-core is not installed (names the pip extra).
            ConfigurationError: ``llm`` is not a LlamaIndex LLM.
        """
        from pagesight.integrations import build_llamaindex_query_engine

        options.setdefault("reranker", self.reranker(None))
        options.setdefault("trust_remote_code", self.trust_remote_code)
        return build_llamaindex_query_engine(llm, store=self, **options)

    # -- writing ---------------------------------------------------------------------------------

    def add(
        self,
        sources: str | Path | Iterable[str | Path],
        *,
        force: bool = False,
        show_progress: bool | None = None,
        on_result: Callable[[SourceResult], None] | None = None,
        **loader_options: Any,
    ) -> IngestReport:
        """Index files, folders (recursively) and http(s) URLs; unchanged sources are skipped.

        Args:
            sources: one source or several.
            force: re-index sources whose bytes did not change.
            show_progress: progress bars (``None``: only on a terminal).
            on_result: called after each source with its
                :class:`~pagesight.pipelines.ingest.SourceResult`.
            **loader_options: for the loaders: ``dpi``, ``renderer``, ``password``, ``render``,
                ``max_pages``, ``max_pixels``, ``ocr``, ``allow_private``, ... (see
                :func:`pagesight.pipelines.ingest.ingest`); ``executor="ray"`` (or a
                :class:`~pagesight.pipelines.distributed.RayExecutor`) loads and embeds on Ray.

        Returns:
            An :class:`~pagesight.pipelines.ingest.IngestReport` (``report.failed`` lists the
            sources that failed, with reasons; the others are indexed).

        Raises:
            EmptyStoreError: the store is empty and was opened, not created (no model chosen).
            StoreMismatchError: the store was built with another embedder.
        """
        from pagesight.pipelines.ingest import ingest

        given = [sources] if isinstance(sources, (str, Path)) else list(sources)
        missing = self._all_missing(given)
        if missing is not None:  # nothing to index: do not create an empty store folder
            for result in missing.results:
                if on_result is not None:
                    on_result(result)
            return missing
        if self._plan is None and self._encoder is None and self.store.embedder is None:
            raise EmptyStoreError(
                f"store {self.location} has no embedder yet: add documents through "
                f"Index.create({self._where!r}, profile=...) (or pagesight index)"
            )
        report = ingest(
            given,
            self.store,
            self.encoder,
            force=force,
            show_progress=show_progress,
            on_result=on_result,
            **loader_options,
        )
        self.refresh()
        return report

    def _all_missing(self, given: list[str | Path]) -> IngestReport | None:
        """The failed report when the store folder is new and every source is a missing local path.

        ``None`` otherwise (then :meth:`add` opens, or creates, the store as usual).
        """
        import os

        from pagesight.documents._common import printable_name
        from pagesight.errors import SourceNotFoundError
        from pagesight.pipelines.ingest import IngestReport, SourceResult
        from pagesight.pipelines.stores import is_store_url

        if not given or self._store is not None or is_store_url(str(self._where)):
            return None
        if Path(self._where).exists():
            return None
        names = [os.fsdecode(s) for s in given]
        if any("://" in name or Path(name).exists() for name in names):
            return None
        report = IngestReport()
        for name in names:
            error = SourceNotFoundError(
                printable_name(name), "no such file or folder; check the path (or the link)"
            )
            report.results.append(SourceResult(name, "failed", error=str(error)))
        return report

    def delete(self, source: str | Path) -> int:
        """Remove ``source`` from the store; the pages removed.

        A path may be spelled any way that names the file from the current folder
        (``./examples/x.pdf``, ``examples/x.pdf``, the absolute path): it is matched against the
        absolute name :meth:`add` stores, and against names an older pagesight stored as typed. A
        URL is matched without its credentials, as it is stored.
        """
        removed = 0
        for name in self.stored_names(source):
            removed += self.store.delete_source(name)
        self.refresh()
        return removed

    def stored_names(self, source: str | Path) -> list[str]:
        """The names in the store that ``source`` (a path spelled any way, or a URL) refers to.

        Usually one: the absolute path :meth:`add` stored. A store written by an older pagesight
        may also hold the path as it was typed then (``examples/x.pdf``); those match when they
        name the same file from the current folder. ``[]`` when nothing matches.
        """
        from pagesight.documents._common import canonical_source, same_source
        from pagesight.documents.url import redact_url

        given = redact_url(str(source))
        wanted = canonical_source(given)
        return [
            s.source for s in self.sources() if s.source in (given, wanted) or same_source(s.source, wanted)
        ]

    def refresh(self) -> None:
        """Make the searchers see what another writer added (:meth:`add` and :meth:`delete` do it)."""
        with self._lock:
            for searcher in self._searchers.values():
                searcher.refresh()

    # -- health ----------------------------------------------------------------------------------

    def holds_tokens(self) -> bool:
        """Whether the store holds token matrices (late interaction), read without repairing anything."""
        if not self._owns_store and self._store is not None:
            info = self._store.embedder
            return info is not None and info.kind == "late-interaction"
        pages = self._pages_store()
        try:
            return self._late(pages)
        finally:
            pages.close()

    def check(self, *, repair: bool = False) -> StoreHealth:
        """Compare the store's database, page images, token files and journal.

        With ``repair``, finish interrupted writes and remove files no record uses first.
        Opening for the check reconciles nothing, so the report shows what a crash left.
        """
        from pagesight.retrieval.store import MultiVectorStore

        if not self._owns_store and self._store is not None:
            return self._store.repair() if repair else self._store.check()
        pages = self._pages_store()
        store: Any = pages
        try:
            if self._late(pages):
                url = _is_url(self._where)
                server = self._server_options() if url else {}
                store = MultiVectorStore(url=self._where, **server) if url else MultiVectorStore(self._where)
            return store.repair() if repair else store.check()
        finally:
            if store is not pages:
                store.close()
            pages.close()

    def _server_options(self) -> dict[str, Any]:
        from pagesight.pipelines.stores import server_options

        return server_options(**self._server)

    def _pages_store(self) -> PageStore:
        from pagesight.retrieval.store import PageStore

        if _is_url(self._where):
            return PageStore(url=self._where, **self._server_options())
        if not Path(self._where).is_dir():
            raise _missing_store(self._where)
        return PageStore(self._where)

    def _late(self, pages: PageStore) -> bool:
        if pages.recorded_kind() == "late-interaction":
            return True
        return not _is_url(self._where) and (Path(self._where) / "tokens" / "index.sqlite3").is_file()

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the store if this index opened it (an index can be opened again afterwards)."""
        with self._lock:
            store, self._store = self._store, None
            self._searchers.clear()
            if store is not None and self._owns_store:
                store.close()
            elif store is not None:
                self._store = store

    def __enter__(self) -> Index:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Index({self.location!r})"


def _profile(profile: str | Profile | None) -> Profile | None:
    if profile is None or not isinstance(profile, str):
        return profile
    from pagesight.profiles import resolve_profile

    return resolve_profile(profile)[0]
