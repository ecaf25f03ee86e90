"""Fork server for tests/retrieval/test_crash_safety.py: MiniLM loaded once, each command in a fork.

Run as ``python tests/retrieval/crash_worker.py``. It loads the dense MiniLM encoder and the
``minilm-tokens`` late-interaction encoder (one thread each, so forking after them is safe), prints
``{"ready": true}`` and then reads one JSON command per line from stdin. For each it forks a child
that runs the command's steps against a real store and writes its answer to ``command["out"]``; the
server prints ``{"pid": <child pid>}`` at once (so the test can SIGKILL the child at a random moment)
and ``{"exit": <status>}`` when the child is gone (negative: killed by that signal).

A command::

    {"kind": "dense" | "multi" | "cent", "store": "<folder>", "out": "<file>",
     "url": "<Chroma server URL>" | null, "collection": "<name>" (with url: a server store),
     "steps": [["snapshot"], ["ingest", [paths]], ["delete", source]],
     "kill": {"target": "module:Attr.attr", "n": 2, "when": "before" | "after"} | null}

``kill`` makes the child SIGKILL itself at the n-th call of that function (before or after it
runs): deterministic crash points inside the token segments, the journal, and Chroma's writes.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np


def _install_kill(spec: dict[str, Any]) -> None:
    module_name, _, attr_path = spec["target"].partition(":")
    owner: Any = importlib.import_module(module_name)
    *parents, name = attr_path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = {"n": 0}

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == spec["n"] and spec["when"] == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if calls["n"] == spec["n"] and spec["when"] == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, wrapper)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _snapshot(store: Any, kind: str, root: Path) -> dict[str, Any]:
    """The store's content as comparable values, plus the invariants a crash must not break."""
    pages = store.pages()
    page_store = store.page_store if kind in ("multi", "cent") else store
    page_store.count()  # opens (and verifies) the store
    col = page_store.backend.collection()
    ids = [h.id for h in pages]
    emb = col.get(ids=ids, include=["embeddings"]) if ids else {"ids": [], "embeddings": []}
    vectors = dict(zip(emb["ids"], emb["embeddings"], strict=True))
    records = {}
    missing_images = []
    referenced = set()
    for h in pages:
        image = None
        if h.image is not None:
            rel = h.image.relative_to(page_store.image_dir).as_posix()
            referenced.add(rel)
            if h.image.is_file():
                image = [rel, _digest(h.image.read_bytes())]
            else:
                missing_images.append(h.id)
        records[h.id] = {
            "source": h.source,
            "page": h.page,
            "text": h.text,
            "size": [h.width, h.height],
            "hash": h.content_hash,
            "image": image,
            "vector": _digest(np.round(np.asarray(vectors[h.id], np.float32), 4).tobytes()),
        }
    out: dict[str, Any] = {"records": records, "missing_images": missing_images}
    image_dir = page_store.image_dir
    on_disk = {p.relative_to(image_dir).as_posix() for p in image_dir.rglob("*") if p.is_file()}
    out["orphan_images"] = sorted(on_disk - referenced)
    out["leftovers"] = sorted(
        p.name for p in [*root.glob(".staging-*"), *(root / "journal").glob("*")] if p.exists()
    )
    if kind in ("multi", "cent"):
        token_ids = store.token_store.ids()
        out["tokens_without_record"] = sorted(set(token_ids) - set(ids))
        out["records_without_tokens"] = sorted(set(ids) - set(token_ids))
        present = sorted(set(ids) & set(token_ids))
        for id_, m in zip(present, store.get_tokens(present), strict=True):
            records[id_]["tokens"] = _digest(np.asarray(m, np.float16).tobytes())
    if kind == "cent":
        out["centroids"] = _centroid_state(store, present)
    return out


def _centroid_state(store: Any, present: list[str]) -> dict[str, Any]:
    """What the centroid index holds: its coded pages, files no record owns, and whether a search
    through it that probes every centroid finds exhaustive MaxSim's top pages."""
    import sqlite3

    folder = store.token_dir / "centroids"
    conn = sqlite3.connect(folder / "index.sqlite3")
    try:
        settings = dict(conn.execute("SELECT key, value FROM settings").fetchall())
        gen = int(settings.get("gen", "0"))
        gens = {gen, int(settings.get("next_gen", "0"))} - {0}
        coded = sorted(r[0] for r in conn.execute("SELECT id FROM pages WHERE gen = ?", (gen,)))
        segs = {f"lists-{g:06d}-{q:06d}" for g, q in conn.execute("SELECT gen, seq FROM segments")}
    finally:
        conn.close()
    stray = []
    for path in folder.iterdir():
        name = path.name
        if name.startswith("centroids-"):
            ok = name.endswith(".npy") and name[10:16].isdigit() and int(name[10:16]) in gens
        elif name.startswith("lists-"):
            ok = name.endswith(".npy") and name.split(".")[0] in segs
        else:
            continue
        if not ok:
            stray.append(name)
    same = None
    if present:
        query = store.get_tokens([present[0]])[0][:3]
        info = store.embedder
        exact = [h.id for h in store.search(query, k=3, embedder=info, exhaustive=True)]
        probed = [h.id for h in store.search(query, k=3, embedder=info, nprobe=10_000, candidates=3)]
        same = exact == probed
    return {"generation": gen, "coded": coded, "stray_files": sorted(stray), "search_exact": same}


def _run(cmd: dict[str, Any], encoders: dict[str, Any]) -> dict[str, Any]:
    from pagesight.pipelines.ingest import ingest
    from pagesight.retrieval.multivector import MultiVectorStore
    from pagesight.retrieval.store import PageStore

    PageStore.max_batch_size = 2  # several Chroma calls per source: crash points between them
    if cmd.get("kill"):
        _install_kill(cmd["kill"])
    root = Path(cmd["store"])
    kind = cmd["kind"]
    if cmd.get("url"):  # a server store: page images under the folder, records on the server
        root.mkdir(parents=True, exist_ok=True)
        store: Any = PageStore(url=cmd["url"], image_dir=root / "images", collection=cmd["collection"])
    elif kind == "cent":
        MultiVectorStore.centroid_min_pages = 2  # the test's 8 pages train centroids
        store = MultiVectorStore(root, candidates_from="centroids")
    else:
        store = MultiVectorStore(root) if kind == "multi" else PageStore(root)
    answers: list[Any] = []
    for step in cmd["steps"]:
        if step[0] == "snapshot":
            answers.append(_snapshot(store, kind, root))
        elif step[0] == "ingest":
            report = ingest(step[1], store, encoders[kind], show_progress=False)
            answers.append({r.source: r.status for r in report.results})
        elif step[0] == "delete":
            answers.append(store.delete_source(step[1]))
        else:
            raise ValueError(f"unknown step {step!r}")
    store.close()
    return {"ok": True, "answers": answers}


def main() -> None:
    import torch

    torch.set_num_threads(1)  # no OpenMP pool to break in the forked children
    import chromadb  # noqa: F401 - imported once here, clients only ever made in the children
    import pymupdf  # noqa: F401

    from pagesight.models.colembed import ColEmbedEncoder
    from pagesight.models.matryoshka import MatryoshkaEncoder
    from pagesight.pipelines import ingest  # noqa: F401
    from pagesight.retrieval import multivector  # noqa: F401

    dense = MatryoshkaEncoder("all-minilm-l6-v2")
    dense.load()
    tokens = ColEmbedEncoder("minilm-tokens")
    tokens.load()
    encoders = {"dense": dense, "multi": tokens, "cent": tokens}
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                answer = _run(cmd, encoders)
            except BaseException as e:
                answer = {"ok": False, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
            Path(cmd["out"]).write_text(json.dumps(answer))
            os._exit(0)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"exit": code}), flush=True)


if __name__ == "__main__":
    main()
