"""Ingest on Ray Data: pages are loaded and embedded by a Ray cluster, the driver commits each source.

Install::

    pip install "pagesight[ray]"

Use::

    from pagesight import Index

    with Index.create("store", profile="offline") as index:
        report = index.add(["examples/"], executor="ray")            # a local Ray instance
        cluster = RayExecutor(address="auto", shared_dir="/mnt/shared/pagesight")   # a running cluster
        report = index.add(["/mnt/shared/docs/"], executor=cluster)

How the work is split:

1. **Driver** (this process): expands folders, hashes files and skips sources whose bytes are already
   stored (as :func:`~pagesight.pipelines.ingest.ingest` does), then builds a Ray Dataset with one row
   per remaining source.
2. **Load tasks** (CPU workers, ``num_cpus=1`` each): read and render each source, OCR included, and
   stream its pages; page images go to a staging folder every node reaches (the store's own staging
   folder on one machine, ``shared_dir`` on a cluster). Each source ends with a closing row that
   carries its page count, its warnings or the reason it failed.
3. **Embed actors** (an actor pool, one model load per actor, ``num_gpus`` each when the cluster has
   GPUs): ``encoder.encode_pages`` on batches of ``batch_size`` pages, which the encoder splits by its
   own batch-size rules (halving on CUDA out-of-memory).
4. **Driver** again: streams the embedded pages back and, once a source's pages have all arrived,
   writes them with one :meth:`~pagesight.retrieval.store.PageStore.add_source` call.

Guarantees: the driver is the store's only writer and writes a source in one ``add_source``, so a
source is all-or-nothing exactly as in single-process ingest (the store's journal rolls back a write
the driver did not finish; a server store's per-source page count marks it incomplete). A source
that fails to load or embed is reported with its reason and the others land. A killed worker is
Ray's to handle (tasks are retried, embed actors restarted and their batch retried; pages a retried
load task sends twice are counted once). A killed driver loses only the sources it had not
committed: running the same command again skips the committed ones (same bytes) and does the rest.
Embedded stores therefore work on a cluster too; the vectors (a few KB per page) travel to the
driver, the page images do not (they stay in the shared folder until the store hard-links or copies
them into its image folder).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import pickle
import shutil
import socket
import sys
import tempfile
import threading
import types
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pagesight.documents import expand_sources, is_url, load_source, source_name
from pagesight.documents._common import reading
from pagesight.documents.page import Page, sha256_file
from pagesight.errors import (
    ConfigurationError,
    MissingDependencyError,
    ModelNotAvailableError,
    PagesightError,
    StoreMismatchError,
)

if TYPE_CHECKING:
    from pagesight.pipelines.ingest import Encoder, IngestProgress, IngestReport, SourceResult, Store

__all__ = ["RayExecutor", "as_executor", "ingest_on_ray"]

logger = logging.getLogger(__name__)

RAY_INSTALL_HINT = 'pip install "pagesight[ray]"'

_FATAL: dict[str, type[PagesightError]] = {
    cls.__name__: cls
    for cls in (StoreMismatchError, ModelNotAvailableError, ConfigurationError, MissingDependencyError)
}
"""Errors that concern every source alike: raised, as single-process ingest raises them."""

_RETRIES = 3  # times Ray runs a load task again, or restarts an embedding actor, after its process died
_PAGES_PER_BLOCK = 16  # pages a load task hands on at a time (embedding starts before a long PDF ends)


@dataclass(frozen=True, slots=True)
class RayExecutor:
    """Where and how :func:`~pagesight.pipelines.ingest.ingest` runs on Ray (``executor=``).

    Attributes:
        address: the cluster to join: ``None`` joins the one ``ray.init()`` finds (``$RAY_ADDRESS``)
            or starts a local instance on this machine; ``"auto"`` a cluster already running here;
            ``"ray://head:10001"`` a remote one (Ray Client). A Ray that this process initialized
            before is used as it is.
        shared_dir: a folder every node mounts at the same path (NFS, a cluster file system) for
            page images in transit and the OCR cache. Needed on a cluster of several nodes; on one
            machine the store's own staging folder is used.
        embed_workers: embedding actors (one model load each); ``None``: one per GPU of the cluster,
            or one when it has none.
        num_gpus: GPUs per embedding actor; ``None``: 1 when the cluster has GPUs, else 0.
        cpus_per_embed_worker: CPUs reserved per embedding actor (its torch threads).
        load_workers: load tasks at once (each takes one CPU); ``None``: as many as Ray schedules.
        num_cpus: CPUs of a local instance this call starts (``None``: all of this machine's).
    """

    address: str | None = None
    shared_dir: str | Path | None = None
    embed_workers: int | None = None
    num_gpus: float | None = None
    cpus_per_embed_worker: float = 1.0
    load_workers: int | None = None
    num_cpus: int | None = None
    ray_init_options: Mapping[str, Any] = field(default_factory=dict)
    """More keywords for ``ray.init`` when this call starts or joins Ray (``runtime_env``, ...)."""


def as_executor(executor: str | RayExecutor | None) -> RayExecutor | None:
    """``None`` for the single-process executor (``"local"``), else the :class:`RayExecutor` to use.

    Raises:
        ConfigurationError: anything but ``"local"``, ``"ray"``, ``None`` or a :class:`RayExecutor`.
    """
    if executor is None or executor == "local":
        return None
    if executor == "ray":
        return RayExecutor()
    if isinstance(executor, RayExecutor):
        return executor
    raise ConfigurationError(f"`executor` must be 'local', 'ray' or a RayExecutor, got {executor!r}")


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(f"ingest on Ray needs Ray Data: {RAY_INSTALL_HINT}") from e
    return ray


# -- shipping the encoder to the actors -------------------------------------------------------------


def _encoder_bytes(encoder: Any) -> bytes:
    """``encoder`` pickled for the actors (cloudpickle; locks and mapping proxies are rebuilt).

    An encoder that has not loaded its weights is a few KB: each actor loads the weights itself.

    Raises:
        ConfigurationError: the encoder cannot be pickled (says what would be needed).
    """
    import cloudpickle

    lock_type, rlock_type = type(threading.Lock()), type(threading.RLock())

    class _Pickler(cloudpickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            kind = type(obj)
            if kind is lock_type:
                return threading.Lock, ()
            if kind is rlock_type:
                return threading.RLock, ()
            if kind is types.MappingProxyType:
                return types.MappingProxyType, (dict(obj),)
            return super().reducer_override(obj)

    buf = io.BytesIO()
    try:
        _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(encoder)
    except Exception as e:
        raise ConfigurationError(
            f"the encoder {encoder!r} cannot be sent to Ray workers ({type(e).__name__}: {e}); "
            "use a pagesight encoder, or index with executor='local'"
        ) from e
    return buf.getvalue()


# -- worker side: load ------------------------------------------------------------------------------


def _empty_row(key: int) -> dict[str, Any]:
    return {
        "key": key,
        "page": 0,  # the page number; 0 on a source's closing row
        "page_obj": b"",  # the Page, pickled (every field, whatever the loaders add)
        "total": -1,
        "error": "",
        "error_type": "",
        "warnings": "[]",
        "vector": b"",
        "rows": 0,
    }


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {name: [r[name] for r in rows] for name in rows[0]}


def _path_to_open(source: str, several_nodes: bool) -> str:
    if not several_nodes or is_url(source):
        return source
    return os.path.abspath(source)


def _load_batch(batch: Mapping[str, Any], *, staging: str, options: Mapping[str, Any]) -> Iterator[dict]:
    """Load the sources of ``batch`` (one per row): their pages, then a closing row per source."""
    from pagesight.documents.ocr import pick_engine

    opts = dict(options)
    if isinstance(opts.get("ocr_engine"), str) and opts.get("ocr", "auto") != "never":
        opts["ocr_engine"] = pick_engine(opts["ocr_engine"])  # the driver sends a name, not an engine
    for key, source, path in zip(batch["key"], batch["source"], batch["path"], strict=True):
        key, source, path = int(key), str(source), str(path)
        folder = Path(staging) / str(key)
        folder.mkdir(parents=True, exist_ok=True)  # a retried task writes the same files again
        end = _empty_row(key)
        pages = 0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            buf: list[dict[str, Any]] = []
            try:
                for page in load_source(path, image_dir=folder, **opts):
                    if path != source:  # opened by its absolute path: stored under the name given
                        page = dataclasses.replace(page, source=source)
                    row = _empty_row(key)
                    row.update(page=int(page.page), page_obj=pickle.dumps(page, pickle.HIGHEST_PROTOCOL))
                    buf.append(row)
                    pages += 1
                    if len(buf) >= _PAGES_PER_BLOCK:
                        yield _columns(buf)
                        buf = []
                if buf:
                    yield _columns(buf)
            except Exception as e:  # reported on the closing row: this source fails, the others go on
                end.update(error=str(e) if isinstance(e, PagesightError) else f"{type(e).__name__}: {e}")
                end.update(error_type=type(e).__name__)
        notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        end.update(total=pages, warnings=json.dumps(notes))
        yield _columns([end])


# -- worker side: embed -----------------------------------------------------------------------------


class _Embedder:
    """An embedding actor: one encoder, loaded on its first batch."""

    def __init__(self, encoder: bytes, num_threads: int) -> None:
        self.encoder = pickle.loads(encoder)
        if num_threads > 0:
            try:
                import torch

                torch.set_num_threads(num_threads)
            except ImportError:  # an encoder without torch (Ollama)
                pass

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        out: dict[str, Any] = {name: list(values) for name, values in batch.items()}
        todo = [i for i, page in enumerate(out["page"]) if int(page) > 0]
        if todo:
            try:
                self._embed(out, todo)
            except Exception:  # find the source(s) at fault: embed each source's pages alone
                for key in dict.fromkeys(int(out["key"][i]) for i in todo):
                    rows = [i for i in todo if int(out["key"][i]) == key]
                    try:
                        self._embed(out, rows)
                    except Exception as e:
                        message = str(e) if isinstance(e, PagesightError) else f"{type(e).__name__}: {e}"
                        logger.warning("embedding failed: %s", message)
                        for i in rows:
                            out["error"][i], out["error_type"][i] = message, type(e).__name__
        return out

    def _embed(self, out: dict[str, Any], rows: list[int]) -> None:
        pages = [pickle.loads(out["page_obj"][i]) for i in rows]
        embedded = self.encoder.encode_pages(pages)
        matrices = list(embedded) if isinstance(embedded, list) else list(np.asarray(embedded))
        for i, vec in zip(rows, matrices, strict=True):
            arr = np.ascontiguousarray(vec, dtype=np.float32)
            out["vector"][i] = arr.tobytes()
            out["rows"][i] = int(arr.shape[0]) if arr.ndim == 2 else 0


# -- driver side ------------------------------------------------------------------------------------


@dataclass
class _Source:
    """What the driver knows of one source in flight."""

    source: str
    name: str
    digest: str | None
    pages: dict[int, tuple[Page, np.ndarray]] = field(default_factory=dict)
    total: int | None = None
    error: str | None = None
    error_type: str = ""
    notes: tuple[str, ...] = ()
    position: int = 0
    seen: int = 0  # distinct pages that came back (for progress)
    dropped: set[int] = field(default_factory=set)  # pages that came back after the source failed
    done: bool = False


def _staging_root(store: Store, executor: RayExecutor, nodes: Sequence[Mapping[str, Any]]) -> Path:
    """Where page images wait between the load tasks and the store: a folder every node reaches.

    Raises:
        ConfigurationError: a cluster of several nodes and no ``shared_dir``.
    """
    if executor.shared_dir is not None:
        shared = Path(executor.shared_dir).expanduser()
        shared.mkdir(parents=True, exist_ok=True)
        return shared
    alive = [n for n in nodes if n.get("Alive", True)]
    if len(alive) > 1:
        raise ConfigurationError(
            f"the Ray cluster has {len(alive)} nodes: page images need a folder every node mounts at the "
            "same path; pass RayExecutor(shared_dir=...) (pagesight index --ray-shared-dir PATH)"
        )
    store.image_dir.parent.mkdir(parents=True, exist_ok=True)
    return store.image_dir.parent


def _precheck(source: str, store: Store, *, force: bool, position: int) -> SourceResult | _Source:
    """The driver's part before loading: a result for a skipped source, else the source to load."""
    from pagesight.pipelines.ingest import SourceResult, _same_bytes_elsewhere, _stored_name

    digest: str | None = None
    source_name(source)
    name = _stored_name(source)
    with reading(source):
        if not is_url(source) and Path(source).is_file():
            digest = sha256_file(source)
    if digest is not None:
        indexed = None if force else store.source_info(source)
        if indexed is not None and indexed.content_hash == digest:
            return SourceResult(source, "unchanged", indexed.pages)
        duplicate = _same_bytes_elsewhere(store, source, digest, force=force)
        if duplicate is not None:
            return duplicate
    return _Source(source, name, digest, position=position)


def _commit(state: _Source, store: Store, encoder: Encoder) -> SourceResult:
    """Write one source whose pages have all arrived (or report why it failed)."""
    from pagesight.pipelines.ingest import SourceResult, _drop_old_spellings, _same_bytes_elsewhere

    if state.error_type in _FATAL:
        raise _FATAL[state.error_type](state.error or state.error_type)
    if state.error is not None:
        return SourceResult(state.name, "failed", error=state.error, warnings=state.notes)
    if not state.pages:
        return SourceResult(state.name, "failed", error="no pages were found", warnings=state.notes)
    ordered = [state.pages[n] for n in sorted(state.pages)]
    pages = [p for p, _ in ordered]
    if state.digest is None:  # a URL: the same-bytes check a file had before loading
        duplicate = _same_bytes_elsewhere(store, state.name, pages[0].content_hash, state.notes)
        if duplicate is not None:
            return duplicate
    vectors: Any = [v for _, v in ordered] if store.multivector else np.stack([v for _, v in ordered])
    store.add_source(pages, vectors, embedder=encoder.info)
    _drop_old_spellings(store, state.name)  # as single-process ingest: an older store's typed name goes
    return SourceResult(state.name, "indexed", len(pages), warnings=state.notes)


def _receive(row: Mapping[str, Any], state: _Source, dims: int) -> bool:
    """Take one row of the embedded dataset into ``state``; whether it was a page not seen before."""
    page = int(row["page"])
    if row["error"] and state.error is None:
        state.error, state.error_type = str(row["error"]), str(row["error_type"])
    if page == 0:  # the closing row of the source
        state.total = int(row["total"])
        state.notes = tuple(json.loads(str(row["warnings"])))
        return False
    new = page not in state.pages and page not in state.dropped
    if new:
        state.seen += 1
    if state.error is not None:  # the source failed: its pages are not kept, but still counted once
        state.dropped.update(state.pages)
        state.dropped.add(page)
        state.pages.clear()
        return new
    vec = np.frombuffer(bytes(row["vector"]), dtype=np.float32)
    rows = int(row["rows"])
    vec = vec.reshape(rows, dims) if rows else vec
    state.pages[page] = (pickle.loads(bytes(row["page_obj"])), vec.copy())
    return new


def _ready(state: _Source) -> bool:
    if state.done or state.total is None:
        return False
    return state.error is not None or len(state.pages) >= state.total


def _embed_cpus(total: float, actors: int, wanted: float) -> float:
    """CPUs each embedding actor reserves: ``wanted``, less when the actors would leave no CPU for loading.

    On a small machine (``ray.init(num_cpus=1)``) actors that took every CPU would starve the load
    tasks and the job would wait forever; they reserve what is left after one load task instead.
    """
    if actors * wanted <= total - 1:
        return wanted
    return max(0.0, (total - 1) / actors)


def _load_task_args() -> dict[str, Any]:
    return {"max_retries": _RETRIES}


def _actor_args() -> dict[str, Any]:
    return {"max_restarts": _RETRIES, "max_task_retries": _RETRIES}


def _cluster_gpus(ray: Any) -> int:
    return int(ray.cluster_resources().get("GPU", 0))


def ingest_on_ray(
    sources: Sequence[str | os.PathLike[str]],
    store: Store,
    encoder: Encoder,
    executor: RayExecutor,
    *,
    force: bool,
    batch_size: int,
    show_progress: bool | None,
    on_result: Callable[[SourceResult], None] | None,
    loader_options: Mapping[str, Any],
    on_progress: Callable[[IngestProgress], None] | None = None,
) -> IngestReport:
    """:func:`~pagesight.pipelines.ingest.ingest` on Ray (call that, with ``executor=``).

    The checks that concern every source (embedder and store kinds, the OCR engine) have been made
    by ``ingest``; ``loader_options`` are its loader options.
    """
    from pagesight.pipelines.ingest import (
        IngestReport,
        SourceResult,
        _once,
        _store_folders,
        _stored_name,
        _Tracker,
    )

    ray = _import_ray()
    report = IngestReport()
    said: set[str] = set()

    finished: list[tuple[int, SourceResult]] = []

    expanded = expand_sources([os.fsdecode(s) for s in sources], exclude=_store_folders(store))
    tracker = _Tracker(expanded, on_progress) if on_progress is not None else None
    if tracker is not None:
        tracker.send(None)  # the total, before the first page

    def done(result: SourceResult, position: int, pages_seen: int = 0) -> None:
        """Report a source as it finishes; the report lists them in the order given, as ``ingest`` does."""
        result = _once(result, said)
        finished.append((position, result))
        report.results[:] = [r for _, r in sorted(finished, key=lambda f: f[0])]
        if on_result is not None:
            on_result(result)
        if tracker is not None:
            tracker.in_source = pages_seen  # sources finish interleaved: this one's pages correct the total
            tracker.finished(position, result)

    def page_arrived(source: str) -> None:
        if tracker is not None:
            tracker.done += 1
            tracker.send(source)

    todo: list[_Source] = []
    for position, source in enumerate(expanded):
        try:
            checked = _precheck(source, store, force=force, position=position)
        except tuple(_FATAL.values()):
            raise
        except PagesightError as e:
            done(SourceResult(_stored_name(source), "failed", error=str(e)), position)
            continue
        except Exception as e:  # an unexpected failure in one source must not stop the others
            logger.exception("unexpected error while indexing %s", _stored_name(source))
            done(SourceResult(_stored_name(source), "failed", error=f"{type(e).__name__}: {e}"), position)
            continue
        if isinstance(checked, _Source):
            todo.append(checked)
        else:
            done(checked, position)
    if not todo:
        return report

    started = False
    if not ray.is_initialized():
        init: dict[str, Any] = {"address": executor.address, **executor.ray_init_options}
        if executor.address is None and not os.environ.get("RAY_ADDRESS") and executor.num_cpus is not None:
            init["num_cpus"] = executor.num_cpus
        init.setdefault("include_dashboard", False)
        init.setdefault("log_to_driver", True)
        ray.init(**init)
        started = True
    try:
        return _run(
            ray,
            todo,
            store,
            encoder,
            executor,
            batch_size,
            show_progress,
            loader_options,
            done,
            report,
            page_arrived,
        )
    finally:
        if started:
            ray.shutdown()


def _run(
    ray: Any,
    todo: list[_Source],
    store: Store,
    encoder: Encoder,
    executor: RayExecutor,
    batch_size: int,
    show_progress: bool | None,
    loader_options: Mapping[str, Any],
    done: Callable[..., None],
    report: IngestReport,
    page_arrived: Callable[[str], None],
) -> IngestReport:
    nodes = ray.nodes()
    root = _staging_root(store, executor, nodes)
    # on several nodes a relative path means nothing to a worker: it opens the absolute path (on the
    # shared file system) and the source keeps the name it was given
    several = sum(bool(n.get("Alive", True)) for n in nodes) > 1
    # The pid in the name lets the store remove the folder if this process dies (see PageStore).
    # Absolute: workers do not run in the driver's current folder (a relative --store would stage
    # their page images somewhere the driver never looks).
    staging = Path(
        tempfile.mkdtemp(prefix=f".staging-{os.getpid()}-{socket.gethostname()}-", dir=os.path.abspath(root))
    )
    options = dict(loader_options)
    engine = options.get("ocr_engine")
    if engine is not None and not isinstance(engine, str):
        options["ocr_engine"] = str(getattr(engine, "name", "auto"))  # each worker opens its own engine
    if executor.shared_dir is not None and options.get("ocr_cache") == store.image_dir.parent / "ocr-cache":
        options["ocr_cache"] = root / "ocr-cache"  # the default, beside the store: shared instead
    if isinstance(options.get("ocr_cache"), (str, os.PathLike)):
        options["ocr_cache"] = os.path.abspath(options["ocr_cache"])  # for the workers' current folder
    options.pop("ocr_progress", None)
    gpus = _cluster_gpus(ray)
    num_gpus = executor.num_gpus if executor.num_gpus is not None else (1.0 if gpus else 0.0)
    actors = executor.embed_workers or (max(1, int(gpus // num_gpus)) if num_gpus else 1)
    embed_cpus = _embed_cpus(
        float(ray.cluster_resources().get("CPU", 1)), actors, executor.cpus_per_embed_worker
    )
    ctx = ray.data.DataContext.get_current()
    show = sys.stderr.isatty() if show_progress is None else show_progress
    bars = ctx.enable_progress_bars, ctx.enable_operator_progress_bars
    ctx.enable_progress_bars = ctx.enable_operator_progress_bars = show
    dims = encoder.info.dimensions
    states = {i: s for i, s in enumerate(todo)}
    try:
        ds = ray.data.from_items(
            [
                {"key": i, "source": s.source, "path": _path_to_open(s.source, several)}
                for i, s in states.items()
            ],
            override_num_blocks=len(states),
        )
        # A load task whose worker dies is run again (its pages come again, counted once); the
        # explicit retries also keep Ray from fusing loading into the embedding actors.
        load_args: dict[str, Any] = {"num_cpus": 1, "ray_remote_args_fn": _load_task_args}
        if executor.load_workers is not None:
            load_args["compute"] = ray.data.TaskPoolStrategy(size=executor.load_workers)
        # Ray 2.60 deprecates remote-argument functions in favour of named parameters it does not
        # have yet for retries (hence ray<2.64 in the extra); the warning is not the user's business.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ray_remote_args_fn.*deprecated")
            ds = ds.map_batches(
                _load_batch,
                batch_size=1,
                fn_kwargs={"staging": str(staging), "options": options},
                **load_args,
            )
            ds = ds.map_batches(
                _Embedder,
                batch_size=batch_size,
                fn_constructor_args=(_encoder_bytes(encoder), max(1, int(executor.cpus_per_embed_worker))),
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_gpus=num_gpus,
                num_cpus=embed_cpus,
                # a dead actor is restarted and its batch sent again, a bounded number of times (a
                # page that kills its worker every time fails the job instead of looping)
                ray_remote_args_fn=_actor_args,
            )
        for row in ds.iter_rows():
            state = states[int(row["key"])]
            if state.done:
                continue
            if _receive(row, state, dims):
                page_arrived(state.name)
            if _ready(state):
                state.done = True
                done(_finish(state, store, encoder), state.position, state.seen)
                shutil.rmtree(staging / str(row["key"]), ignore_errors=True)
        for state in states.values():
            if not state.done:  # cannot happen unless Ray dropped rows: say so rather than guess
                from pagesight.pipelines.ingest import SourceResult

                got = len(state.pages)
                expected = "?" if state.total is None else state.total
                done(
                    SourceResult(
                        state.name, "failed", error=f"only {got} of {expected} pages came back from Ray"
                    ),
                    state.position,
                )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        ctx.enable_progress_bars, ctx.enable_operator_progress_bars = bars
    return report


def _finish(state: _Source, store: Store, encoder: Encoder) -> SourceResult:
    """:func:`_commit`, with a failure of this source's write reported, not raised."""
    from pagesight.pipelines.ingest import SourceResult

    try:
        return _commit(state, store, encoder)
    except tuple(_FATAL.values()):
        raise
    except PagesightError as e:
        return SourceResult(state.name, "failed", error=str(e), warnings=state.notes)
    except Exception as e:
        logger.exception("unexpected error while writing %s", state.name)
        return SourceResult(state.name, "failed", error=f"{type(e).__name__}: {e}", warnings=state.notes)
