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
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pagesight
from pagesight.documents import load_source
from pagesight.documents._common import canonical_source
from pagesight.errors import ConfigurationError, ModelNotAvailableError, UnsupportedSourceError
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
# Ray ingest pickles its own in-memory objects between its own workers within one job; nothing pickled
# is ever read from disk, a store or the network.
PICKLE_ALLOWED = {"pipelines/distributed.py"}


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
    assert len(files) > 40 and "documents/url.py" in files and "retrieval/store/pages.py" in files


def test_no_pickle_and_no_unsafe_loaders() -> None:
    problems: list[str] = []
    for path, tree in _modules():
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            if rel in PICKLE_ALLOWED and isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
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


# Weight loaders: ``<anything but a processor/tokenizer/config>.from_pretrained`` and the
# sentence-transformers model classes. Each must pass use_safetensors=True (never unpickle weights).
ST_MODEL_CLASSES = {"SentenceTransformer", "CrossEncoder", "MultiVectorEncoder", "SparseEncoder"}
LOADS_NO_WEIGHTS = re.compile(r"(Processor|Tokenizer|Config|FeatureExtractor)$")


def _calls_in_scope(node: ast.AST, scope: ast.AST) -> Iterator[tuple[ast.Call, ast.AST]]:
    """Every call under ``node`` with the innermost function (else the module) it is made in."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Call):
            yield child, scope
        inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) else scope
        yield from _calls_in_scope(child, inner)


def _bindings(scope: ast.AST, name: str) -> list[ast.expr]:
    values: list[ast.expr] = []
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and node.value is not None:
            targets = [node.target]
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) and node.value is not None:
            values.append(node.value)
    return values


def _is_true(value: ast.expr) -> bool:
    return isinstance(value, ast.Constant) and value.value is True


def _holds_safe_weights(value: ast.expr, scope: ast.AST, depth: int = 0) -> bool:
    """``SAFE_WEIGHTS``, a dict display with ``**SAFE_WEIGHTS`` or ``"use_safetensors": True`` (or
    ``**`` of such a dict), or a local name every assignment of which is one of those."""
    if depth > 4:
        return False
    if isinstance(value, ast.Name):
        if value.id == "SAFE_WEIGHTS":
            return True
        bound = _bindings(scope, value.id)
        return bool(bound) and all(_holds_safe_weights(v, scope, depth + 1) for v in bound)
    if isinstance(value, ast.Dict):
        for key, item in zip(value.keys, value.values, strict=True):
            if key is None and _holds_safe_weights(item, scope, depth + 1):
                return True
            if isinstance(key, ast.Constant) and key.value == "use_safetensors":
                return _is_true(item)
    return False


def _weight_loads_without_safetensors(tree: ast.Module, rel: str) -> tuple[int, list[str]]:
    """``(weight-loading calls seen, those that do not pass use_safetensors=True)`` in one module."""
    seen = 0
    problems: list[str] = []
    for call, scope in _calls_in_scope(tree, tree):
        name = _dotted(call.func) if not isinstance(call.func, ast.Attribute) else call.func.attr
        receiver = _dotted(call.func.value).rsplit(".", 1)[-1] if isinstance(call.func, ast.Attribute) else ""
        if name == "from_pretrained" and not LOADS_NO_WEIGHTS.search(receiver):
            # transformers: use_safetensors=True, directly or in a ``**`` mapping
            ok = any(
                (kw.arg == "use_safetensors" and _is_true(kw.value))
                or (kw.arg is None and _holds_safe_weights(kw.value, scope))
                for kw in call.keywords
            )
        elif name in ST_MODEL_CLASSES:
            # sentence-transformers forwards model_kwargs to transformers' from_pretrained
            ok = any(
                kw.arg == "model_kwargs" and _holds_safe_weights(kw.value, scope) for kw in call.keywords
            )
        else:
            continue
        seen += 1
        if not ok:
            called = _dotted(call.func) or name
            problems.append(f"{rel}:{call.lineno} {called}() without use_safetensors=True")
    return seen, problems


def test_every_weight_loader_passes_use_safetensors() -> None:
    from pagesight._deps import SAFE_WEIGHTS

    assert dict(SAFE_WEIGHTS) == {"use_safetensors": True}
    seen = 0
    problems: list[str] = []
    for path, tree in _modules():
        count, found = _weight_loads_without_safetensors(tree, path.relative_to(PACKAGE).as_posix())
        seen += count
        problems += found
    assert seen >= 12  # every weight-loading call site of the package was found
    assert problems == []


def test_the_safetensors_scan_catches_a_missing_keyword() -> None:
    source = (
        "SAFE = {}\n"
        "def load(st, transformers, auto, src, kw):\n"
        "    model_kwargs = {**SAFE_WEIGHTS, 'dtype': 1}\n"
        "    other = {'dtype': 1}\n"
        "    st.SentenceTransformer(src, model_kwargs=model_kwargs)\n"  # ok
        "    st.SentenceTransformer(src, model_kwargs={**model_kwargs, 'attn': 2})\n"  # ok
        "    auto.from_pretrained(src, **model_kwargs)\n"  # ok
        "    transformers.AutoModel.from_pretrained(src, use_safetensors=True)\n"  # ok
        "    transformers.AutoTokenizer.from_pretrained(src)\n"  # no weights
        "    st.CrossEncoder(src, **SAFE_WEIGHTS)\n"  # 10: not a model_kwargs
        "    st.MultiVectorEncoder(src, model_kwargs=other)\n"  # 11
        "    auto.from_pretrained(src, **kw)\n"  # 12: a parameter, not known to be safe
        "    transformers.AutoModel.from_pretrained(src, use_safetensors=False)\n"  # 13
        "    model_kwargs = {}\n"  # rebinding makes every use above unsafe
    )
    seen, problems = _weight_loads_without_safetensors(ast.parse(source), "x.py")
    assert seen == 8
    assert [p.split()[0] for p in problems] == [f"x.py:{n}" for n in (5, 6, 7, 10, 11, 12, 13)]


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


# ----------------------------------------------------------------------------- safetensors weights only


def _pickle_only_copy(folder: Path) -> Path:
    """A copy of ``folder`` with ``pytorch_model.bin`` (a pickle) in place of ``model.safetensors``.

    transformers 5 always saves safetensors (``safe_serialization=False`` is ignored), so the
    pickle is written with ``torch.save``, as older transformers did.
    """
    import torch
    from safetensors.torch import load_file

    pickled = folder.with_name(f"{folder.name}-pickled")
    shutil.copytree(folder, pickled)
    weights = pickled / "model.safetensors"
    torch.save(load_file(weights), pickled / "pytorch_model.bin")
    weights.unlink()
    return pickled


def _st_model(root: Path) -> Path:
    from tests.models.tiny_models import build_tiny_model

    return build_tiny_model(root / "tiny-embed", hidden=16)


def _load_st(folder: Path) -> object:
    from pagesight.models import MatryoshkaEncoder

    return MatryoshkaEncoder(str(folder), device="cpu").encode_documents(["weights"])


def _cross_encoder(root: Path) -> Path:
    from tests.models.standin_rerank_vl.rerank_builders import build_tiny_cross_encoder

    return build_tiny_cross_encoder(root / "tiny-cross-encoder")


def _load_cross_encoder(folder: Path) -> object:
    from pagesight.models.rerank import Reranker

    return Reranker(str(folder), device="cpu").logits("weights", ["safetensors"])


def _multivector(root: Path) -> Path:
    from tests.models.standin_colembed.colembed_builders import build_tiny_multivector
    from tests.models.tiny_models import minilm_path

    return build_tiny_multivector(root / "tiny-colbert", minilm_path())


def _load_multivector(folder: Path) -> object:
    from pagesight.models.colembed import ColEmbedEncoder

    return ColEmbedEncoder(str(folder), device="cpu").encode_queries(["weights"])


def _remote_code(root: Path) -> Path:
    from tests.models.standin_colembed.colembed_builders import build_standin

    return build_standin(root / "standin-colembed")


def _load_remote_code(folder: Path) -> object:
    from pagesight.models.colembed import ColEmbedEncoder

    enc = ColEmbedEncoder(str(folder), backend="nvidia", trust_remote_code=True, device="cpu")
    return enc.encode_queries(["weights"])


def _e5v(root: Path) -> Path:
    from tests.models.standin_vl_text.vl_text_builders import build_tiny_e5v

    return build_tiny_e5v(root / "tiny-e5-v")


def _load_e5v(folder: Path) -> object:
    from pagesight.models.vl import VLEncoder

    return VLEncoder(str(folder), backend="e5-v", device="cpu").encode_queries(["weights"])


def _nvembed(root: Path) -> Path:
    from tests.models.standin_vl_text.vl_text_builders import build_tiny_nvembed

    return build_tiny_nvembed(root / "tiny-nv-embed")


def _load_nvembed(folder: Path) -> object:
    from pagesight.models.vl import VLEncoder

    enc = VLEncoder(str(folder), backend="nv-embed", trust_remote_code=True, device="cpu")
    return enc.encode_queries(["weights"])


def _vision(root: Path) -> Path:
    from tests.models.standin_embed_vl.vl_builders import build_tiny_clip_vision

    _st_model(root)  # the text half of the pair (safetensors)
    return build_tiny_clip_vision(root / "tiny-vision", hidden=16)


def _load_vision(folder: Path) -> object:
    from pagesight.models.vl import VLEncoder

    text = folder.parent / "tiny-embed"
    return VLEncoder(str(folder), text_model=str(text), device="cpu").load()


def _llava(root: Path) -> Path:
    from tests.pipelines.tiny_vlm import build_tiny_llava

    return build_tiny_llava(root / "tiny-llava")


def _load_generator(folder: Path) -> object:
    from pagesight.models.generate.hf import TransformersGenerator

    return TransformersGenerator(str(folder), device="cpu").load()


WEIGHT_LOADERS: dict[str, tuple[Callable[[Path], Path], Callable[[Path], object]]] = {
    # one public entry point per weight-loading call site in the package
    "sentence-transformers": (_st_model, _load_st),
    "cross-encoder": (_cross_encoder, _load_cross_encoder),
    "multi-vector": (_multivector, _load_multivector),
    "remote-code": (_remote_code, _load_remote_code),
    "e5-v": (_e5v, _load_e5v),
    "nv-embed": (_nvembed, _load_nvembed),
    "vision-pair": (_vision, _load_vision),
    "hf-generator": (_llava, _load_generator),
}


@pytest.mark.parametrize("kind", list(WEIGHT_LOADERS))
def test_pickle_only_weights_are_refused_safetensors_load(kind: str, tmp_path: Path) -> None:
    build, load = WEIGHT_LOADERS[kind]
    folder = build(tmp_path)
    pickled = _pickle_only_copy(folder)
    assert load(folder) is not None  # the safetensors original loads (and encodes)
    with pytest.raises(ModelNotAvailableError) as info:
        load(pickled)
    message = str(info.value)
    assert message.startswith(f"{pickled} ships only pickle weights (pytorch_model.bin)"), message
    assert "pagesight loads only safetensors weights (no pickle)" in message
    assert "save_pretrained(folder, safe_serialization=True)" in message and "SentenceTransformer(" in message
    cause = info.value.__cause__
    assert isinstance(cause, OSError) and "model.safetensors" in str(cause)  # what transformers raised


def test_the_pickle_only_copy_is_a_loadable_model_without_the_policy(tmp_path: Path) -> None:
    """The refusal above is the policy, not a broken folder: sentence-transformers itself loads it."""
    from sentence_transformers import SentenceTransformer

    pickled = _pickle_only_copy(_st_model(tmp_path))
    assert SentenceTransformer(str(pickled), device="cpu").encode(["weights"]).shape == (1, 16)


def test_a_module_with_only_pickle_weights_is_refused_before_loading(tmp_path: Path) -> None:
    """A ``2_Dense/`` module saved as ``pytorch_model.bin``: sentence-transformers would ``torch.load`` it."""
    import torch
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    base = SentenceTransformer(str(_st_model(tmp_path)), device="cpu")
    folder = tmp_path / "with-dense"
    SentenceTransformer(modules=[*base, Dense(16, 8)], device="cpu").save(str(folder))
    assert _load_st(folder) is not None  # all safetensors: loads
    folder = shutil.copytree(folder, tmp_path / "with-pickled-dense")  # a new path: no cached model
    dense = next(p for p in folder.iterdir() if p.is_dir() and p.name.endswith("_Dense"))
    torch.save(load_file(dense / "model.safetensors"), dense / "pytorch_model.bin")
    (dense / "model.safetensors").unlink()
    assert SentenceTransformer(str(folder), device="cpu").encode(["x"]).shape == (1, 8)  # the library would
    with pytest.raises(ModelNotAvailableError, match=r"ships only pickle weights") as info:
        _load_st(folder)
    assert str(info.value).startswith(str(folder)) and info.value.__cause__ is None  # refused up front


# ----------------------------------------------------------------------------- paths stay in the store


def _pdf(path: Path, text: str) -> bytes:
    from tests.documents.doc_factories import pdf_bytes

    data = pdf_bytes([text], width=300, height=300)
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
    # local paths are stored under their absolute form (issue 15 item 7); URLs and NUL names as given
    assert [results[canonical_source(s)].status for s in sources[:4]] == ["indexed"] * 4
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
