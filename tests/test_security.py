"""Security audit: no pickle, no remote code without permission and a pinned revision, no path escapes.

The source checks parse the package with :mod:`ast` (comments and strings do not count, calls do).
The path checks run a real ingest (real PDFs, MiniLM, Chroma) of sources whose names try to climb
out of the store and assert that every file written lies under the store's folder.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pagesight
from pagesight.documents import load_source
from pagesight.errors import ConfigurationError, UnsupportedSourceError
from pagesight.models.registry import DENSE_VL, LATE_INTERACTION, REGISTRY, ModelSpec
from pagesight.pipelines.ingest import ingest
from pagesight.retrieval.store import PageStore
from tests.http_server import LoopbackHTTPServer, Route

PACKAGE = Path(pagesight.__file__).parent
README = PACKAGE.parent / "README.md"
HEX40 = re.compile(r"^[0-9a-f]{40}$")
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
# Data, not a default: the `gpu` profile names two NVIDIA models (pinned revisions, checked below)
# whose code must run; choosing that profile (or `auto` choosing it) is the permission.
ALLOWED_TRUE = {("profiles.py", "Profile")}


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> Any:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "<expr>"
    return "<absent>"


def test_the_scan_sees_the_whole_package() -> None:
    files = [p.relative_to(PACKAGE).as_posix() for p, _ in _modules()]
    assert len(files) > 40 and "documents/url.py" in files and "retrieval/store.py" in files


def test_no_pickle_and_no_unsafe_loaders() -> None:
    problems: list[str] = []
    for path, tree in _modules():
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                problems += [
                    f"{where} imports {a.name}"
                    for a in node.names
                    if a.name.split(".")[0] in FORBIDDEN_MODULES
                ]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
                problems.append(f"{where} imports from {node.module}")
            elif isinstance(node, ast.Call):
                name = _dotted(node.func)
                if name in ("eval", "exec"):
                    problems.append(f"{where} calls {name}()")
                if name.endswith("torch.load") and _keyword(node, "weights_only") is not True:
                    problems.append(f"{where} torch.load without weights_only=True")
                if name in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") is not False:
                    problems.append(f"{where} {name} without allow_pickle=False")
                if _keyword(node, "allow_pickle") is True:
                    problems.append(f"{where} passes allow_pickle=True to {name}")
                if name.endswith("yaml.load") and "Safe" not in str(_keyword(node, "Loader")):
                    problems.append(f"{where} yaml.load without a safe Loader")
                if _keyword(node, "trust_remote_code") is True and (path.name, name) not in ALLOWED_TRUE:
                    problems.append(f"{where} {name}(trust_remote_code=True) hard-coded")
    assert problems == []


def test_no_signature_defaults_to_remote_code() -> None:
    seen = 0
    problems: list[str] = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = node.args
                positional = args.posonlyargs + args.args
                pairs = list(
                    zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
                )
                pairs += [
                    (a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None
                ]
                for arg, default in pairs:
                    if arg.arg == "trust_remote_code":
                        seen += 1
                        if not (isinstance(default, ast.Constant) and default.value is False):
                            problems.append(f"{path.name}:{node.lineno} {node.name}(trust_remote_code=...)")
            elif (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and node.target.id == "trust_remote_code"
                and node.value is not None
            ):
                seen += 1
                value = node.value
                if isinstance(value, ast.Call) and _dotted(value.func) == "Field":  # pydantic field
                    value = next((kw.value for kw in value.keywords if kw.arg == "default"), value)
                if not (isinstance(value, ast.Constant) and value.value is False):
                    problems.append(f"{path.name}:{node.lineno} field trust_remote_code defaults to true")
    assert seen >= 10  # the parameter exists on every model entry point; the scan found them
    assert problems == []


def _specs() -> list[ModelSpec]:
    return [*REGISTRY.values(), *LATE_INTERACTION.values(), *DENSE_VL.values()]


@pytest.mark.parametrize("spec", [s for s in _specs() if s.requires_remote_code], ids=lambda s: s.alias)
def test_remote_code_models_are_pinned_or_documented_unpinned(spec: ModelSpec) -> None:
    if spec.revision is not None:
        assert HEX40.match(spec.revision), spec.revision
        assert spec.code_revision is None or HEX40.match(spec.code_revision)
        return
    rows = [line for line in README.read_text(encoding="utf-8").splitlines() if f"`{spec.alias}`" in line]
    assert any("not pinned" in row for row in rows), (
        f"{spec.alias} needs remote code but has no pinned revision"
    )


def test_gpu_profile_trusts_only_pinned_models() -> None:
    from pagesight.models.registry import resolve_dense_vl
    from pagesight.profiles import PROFILES

    for profile in PROFILES.values():
        if profile.trust_remote_code:
            spec = resolve_dense_vl(profile.embedder)
            assert spec.revision is not None and HEX40.match(spec.revision), profile.name


def test_remote_code_without_permission_says_how_to_allow_it() -> None:
    # Also: tests/models/test_matryoshka_encoder.py::test_remote_code_model_needs_permission,
    # tests/models/test_colembed_nvidia.py::test_refuses_remote_code_without_trust_remote_code.
    from pagesight.models.vl import VLEncoder

    with pytest.raises(ConfigurationError, match="trust_remote_code=True"):
        VLEncoder("llama-nemotron-embed-vl-1b-v2").load()


# ----------------------------------------------------------------------------- paths stay in the store


@pytest.fixture(scope="module")
def encoder() -> Any:
    from pagesight.models.matryoshka import MatryoshkaEncoder

    enc = MatryoshkaEncoder("all-minilm-l6-v2")
    enc.load()
    return enc


def _pdf(path: Path, text: str) -> bytes:
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=300, height=300)
    page.insert_textbox(pymupdf.Rect(20, 20, 280, 280), text, fontsize=12)
    data = doc.tobytes()
    doc.close()
    path.write_bytes(data)
    return data


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.mark.enable_socket
def test_hostile_source_names_cannot_write_outside_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoder: Any
) -> None:
    cwd = tmp_path / "work" / "deep"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    datas = {
        "dotdot": _pdf(tmp_path / "evil.pdf", "climbing out with dot dot"),
        "odd": _pdf(tmp_path / "we\nird\t ..%2F..%2Fname ;$(x).pdf", "a name with odd characters"),
        "link": _pdf(tmp_path / "target.pdf", "reached through a symlink"),
    }
    (cwd / "..%2F..link.pdf").symlink_to(Path("..") / ".." / "target.pdf")
    with LoopbackHTTPServer() as server:
        url_data = _pdf(tmp_path / "served.pdf", "served from a URL whose path climbs")
        for path in ("/../../url-evil.pdf", "/url-evil.pdf", "/%2E%2E/%2E%2E/url-evil.pdf"):
            server.add(path, Route(body=url_data, content_type="application/pdf"))
        url = server.url("/../../url-evil.pdf")
        sources = [
            "../../evil.pdf",
            str(Path("..") / ".." / "we\nird\t ..%2F..%2Fname ;$(x).pdf"),
            "..%2F..link.pdf",
            url,
            "bad\x00/../../x.pdf",
        ]
        before = _files(tmp_path)
        store = PageStore(cwd / "store")
        report = ingest(sources, store, encoder, show_progress=False)
        hits = store.pages()
        store.close()
    results = {r.source: r for r in report.results}
    assert [results[s].status for s in sources[:4]] == ["indexed"] * 4
    assert results["bad\x00/../../x.pdf"].status == "failed"
    assert "NUL" in str(results["bad\x00/../../x.pdf"].error)

    root = (cwd / "store").resolve()
    created = _files(tmp_path) - before
    assert created and all(p.resolve().is_relative_to(root) for p in created), sorted(map(str, created))
    assert not any(".staging-" in str(p) for p in created)
    hashes = {hashlib.sha256(d).hexdigest() for d in [*datas.values(), url_data]}
    assert {h.content_hash for h in hits} == hashes and len(hits) == 4
    for hit in hits:
        assert hit.image is not None and hit.image.resolve().is_relative_to(root / "images")
        assert hit.image.name == f"{hit.content_hash[:32]}-p{hit.page}.png" and hit.image.is_file()


def test_nul_and_odd_sources_raise_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedSourceError, match=r"bad\\x00\.pdf: a path cannot contain a NUL character"):
        load_source("bad\x00.pdf")
    assert not os.path.exists("bad")
