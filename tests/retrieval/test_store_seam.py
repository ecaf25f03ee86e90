"""The store seam: the page policy runs on any StoreBackend, and open_store dispatches by URL scheme."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pagesight.documents.page import Page
from pagesight.errors import ConfigurationError, StoreError
from pagesight.retrieval.store import (
    ChromaBackend,
    MultiVectorStore,
    PageStore,
    StoreBackend,
    default_image_dir,
    open_store,
)
from pagesight.retrieval.store.base import Row, ScoredRow
from pagesight.retrieval.store.open import OPENERS, is_store_url, open_backend, scheme_of
from pagesight.types import EmbedderInfo

MakePages = Callable[..., list[Page]]
INFO = EmbedderInfo(model="toy", revision=None, dimensions=4, kind="dense-text")


class MemoryBackend:
    """A whole backend in a dict: what a new backend module has to provide."""

    name = "memory"

    def __init__(self, root: Path) -> None:
        self._root = root
        self._records: dict[str, tuple[np.ndarray, str, dict[str, Any]]] | None = None
        self._meta: dict[str, Any] = {}

    location = "memory://test"
    folder = None

    def local_dir(self, what: str) -> Path:
        return self._root / what

    def arguments(self) -> str:
        return "memory"

    @property
    def connected(self) -> bool:
        return self._records is not None

    def connect(self, busy: Callable[[], int | str | None] | None = None) -> None:
        self._records = {} if self._records is None else self._records

    def close(self) -> None:
        pass

    def _all(self) -> dict[str, tuple[np.ndarray, str, dict[str, Any]]]:
        assert self._records is not None, "used before connect"
        return self._records

    def identity(self) -> str:
        return "memory-1"

    def max_batch_size(self) -> int:
        return 2

    def read_metadata(self, *, fresh: bool = True) -> dict[str, Any]:
        return dict(self._meta)

    def write_metadata(self, metadata: Mapping[str, Any]) -> None:
        self._meta = dict(metadata)

    def reset(self) -> None:
        self._all().clear()
        self._meta = {}

    def count(self) -> int:
        return len(self._all())

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        documents: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        for id_, vec, doc, meta in zip(ids, vectors, documents, metadatas, strict=True):
            self._all()[id_] = (np.asarray(vec, np.float32), doc, dict(meta))

    def _match(self, where: Mapping[str, str] | None) -> list[str]:
        return [
            i
            for i, (_, _, m) in self._all().items()
            if not where or all(m.get(k) == v for k, v in where.items())
        ]

    def query(self, vector: np.ndarray, k: int, where: Mapping[str, str] | None = None) -> list[ScoredRow]:
        scored = []
        for id_ in self._match(where):
            vec, doc, meta = self._all()[id_]
            cos = float(vec @ vector / (np.linalg.norm(vec) * np.linalg.norm(vector)))
            scored.append((id_, doc, meta, cos))
        return sorted(scored, key=lambda r: -r[3])[:k]

    def get(self, ids: Sequence[str], *, include: Sequence[str] = ("documents", "metadatas")) -> list[Row]:
        return [(i, self._all()[i][1], self._all()[i][2]) for i in ids if i in self._all()]

    def scan(
        self,
        where: Mapping[str, str] | None = None,
        *,
        limit: int,
        offset: int = 0,
        include: Sequence[str] = ("documents", "metadatas"),
    ) -> list[Row]:
        ids = sorted(self._match(where))[offset : offset + limit]
        return self.get(ids)

    def delete(self, ids: Sequence[str]) -> None:
        for i in ids:
            self._all().pop(i, None)

    @contextmanager
    def errors(self, action: str, busy: Callable[[], int | str | None] | None = None) -> Iterator[None]:
        try:
            yield
        except KeyError as e:
            raise StoreError(f"store {self.location}: {action} failed: {e}") from e


def test_backends_satisfy_the_protocol(tmp_path: Path) -> None:
    assert isinstance(ChromaBackend(tmp_path), StoreBackend)
    assert isinstance(MemoryBackend(tmp_path), StoreBackend)
    assert PageStore.multivector is False and MultiVectorStore.multivector is True


def test_the_page_policy_runs_on_another_backend(tmp_path: Path, make_pages: MakePages) -> None:
    store = PageStore(backend=MemoryBackend(tmp_path))
    assert store.image_dir == tmp_path / "images" and store.location == "memory://test"
    assert store.embedder is None
    pages = make_pages("a.pdf", 3)  # more pages than the backend's batch limit
    vectors = np.eye(4, dtype=np.float32)[:3] + 0.01
    store.add_source(pages, vectors, embedder=INFO)
    assert store.embedder == INFO and store.count() == 3
    hits = store.search(np.eye(4, dtype=np.float32)[1], k=2, embedder=INFO)
    assert hits[0].page == 2 and len(hits) == 2 and hits[0].score > hits[1].score
    assert hits[0].image is not None and hits[0].image.is_file()
    assert [s.pages for s in store.sources()] == [3]
    assert store.source_hash("a.pdf") == pages[0].content_hash
    assert store.delete_source("a.pdf") == 3
    assert store.count() == 0 and not any((tmp_path / "images").rglob("*.png"))


def test_a_backend_comes_with_chroma_arguments_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="either `backend`"):
        PageStore(tmp_path, backend=MemoryBackend(tmp_path))


def test_open_store_dispatches_by_scheme(tmp_path: Path) -> None:
    assert scheme_of(tmp_path) == "" and scheme_of("HTTP://h:1") == "http" and scheme_of("C:\\x") == ""
    assert is_store_url("https://h") and not is_store_url(tmp_path)
    assert set(OPENERS) >= {"", "http", "https"}
    assert isinstance(open_backend("http://localhost:8123"), ChromaBackend)
    assert default_image_dir(tmp_path / "s") == tmp_path / "s" / "images"
    with pytest.raises(ConfigurationError, match=r"weaviate://.*http://, https://, qdrant://") as err:
        open_store("weaviate://user:secret@host:6333")
    assert "secret" not in str(err.value)
    with pytest.raises(ConfigurationError, match="no store at"):
        open_store(tmp_path / "missing")
