"""Fuzzing the CLI entry point: random byte file names and random queries.

Whatever the names and queries, ``pagesight`` must end with exit 0, 1 or 2 and no traceback, print
no raw control character, and leave a store whose listed sources are exactly the files that
indexed. The file names are random bytes turned into ``str`` the way the OS hands them to Python
(``os.fsdecode``: surrogateescape for bytes that are not UTF-8).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pagesight._terminal import safe
from pagesight.cli import main
from tests.pipelines.conftest import GARDEN, write_pdf

pytest.importorskip("chromadb", reason="the chroma extra is not installed")

# What a terminal acts on (newline aside): C0, DEL, C1, bidi and zero-width controls, lone surrogates.
RAW = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ufeff"
    "\ud800-\udfff]"
)
FUZZ = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,  # the same examples every run: CI stays reproducible, failures are replayable
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# File name stems: random bytes without "/" or NUL (which no file name can hold), often with
# terminal escapes and invalid UTF-8 spliced in.
stems = st.lists(
    st.one_of(
        st.binary(min_size=1, max_size=12),
        st.sampled_from(
            [b"\x1b]0;owned\x07", b"\x1b[2J", b"\xc2\x9b31m", b"\xe2\x80\xae", b"\xff\xfe", b"\n"]
        ),
    ),
    min_size=1,
    max_size=4,
).map(lambda parts: b"".join(parts).replace(b"/", b"_").replace(b"\0", b"_")[:120])
queries = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=()), max_size=60),  # surrogates and controls included
    st.sampled_from(
        ["", "   ", "\x1b[2J", "\udcff\udcfe", "a\ud800b\udfff", "tomatoes\x00sun", "x" * 200_000]
    ),
)


@pytest.fixture(scope="module")
def pdf_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_pdf(tmp_path_factory.mktemp("pdf") / "garden.pdf", GARDEN).read_bytes()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse's usage errors
        code = e.code if isinstance(e.code, int) else 2
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err, err
    for text in (out, err):
        found = RAW.search(text)
        assert found is None, f"raw {found.group()!r} in output of {argv[:1]}: {text[:500]!r}"
    return code, out, err


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # surrogateescape'd bytes: the name is not UTF-8
        return False
    return True


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="pagesight-fuzz-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def indexed_store(workdir: Path, pdf_bytes: bytes) -> str:
    """A store of one PDF (built once for the query fuzzing)."""
    docs = workdir / "query-docs"
    docs.mkdir()
    (docs / "garden.pdf").write_bytes(pdf_bytes)
    store = str(workdir / "query-store")
    assert main(["index", str(docs), "--store", store, "-q"]) == 0
    return store


@FUZZ
@given(names=st.lists(stems, min_size=1, max_size=3, unique=True), broken=st.booleans())
def test_random_byte_file_names_index_consistently(
    names: list[bytes], broken: bool, pdf_bytes: bytes, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = Path(tempfile.mkdtemp(dir=workdir))
    docs = example / "docs"
    docs.mkdir()
    files: list[str] = []
    for i, stem in enumerate(names):
        path = os.path.join(os.fsencode(docs), stem + b".pdf")
        try:
            with open(path, "wb") as f:  # the last one is a broken PDF when `broken`
                # each good file its own bytes (a comment after %%EOF): same bytes would be one document
                f.write(b"%PDF-1.4 broken" if broken and i == len(names) - 1 else pdf_bytes + b"%%%d\n" % i)
        except OSError:  # a name the file system refuses (too long after escaping, ...)
            continue
        files.append(os.fsdecode(path))
    store = str(example / "store")

    code, _, err = _run(capsys, "index", str(docs), "--store", store, "-q")
    if not files:
        return
    code, out, _ = _run(capsys, "sources", "--store", store, "--json")
    assert code == 0, out
    listed = {s["source"] for s in json.loads(out)}
    # a folder walk skips hidden files (load_folder); a name that is not UTF-8 is refused, named
    seen = [f for f in files if not os.path.basename(f).startswith(".")]
    good = {f for f in seen if _utf8(f) and not (broken and f == files[-1])}
    refused = set(seen) - good
    event(f"{len(listed)} of {len(files)} files indexed")
    # every good file we wrote is listed, under its exact name; the broken one is not, and the
    # index run named it (escaped) in its report
    assert listed == good, (listed, good)
    for name in refused:  # each refused file is named (escaped) in the index report
        assert safe(name) in err, (name, err)
    if listed:
        code, out, _ = _run(capsys, "search", "tomatoes staked", "--store", store, "--mode", "bm25", "--json")
        assert code == 0 and {h["source"] for h in json.loads(out)} <= listed
        for source in listed:  # delete by the exact name works, then the store is empty of it
            code, _, _ = _run(capsys, "delete", source, "--store", store)
            assert code == 0
        code, out, _ = _run(capsys, "sources", "--store", store, "--json")
        assert code == 0 and json.loads(out) == []
    shutil.rmtree(example, ignore_errors=True)


@settings(FUZZ, max_examples=50)
@given(query=queries, mode=st.sampled_from(["bm25", "bm25", "bm25", "hybrid"]), as_json=st.booleans())
def test_random_queries_never_crash_or_reach_the_terminal_raw(
    query: str, mode: str, as_json: bool, indexed_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["search", query, "--store", indexed_store, "--mode", mode, "-k", "2"]
    code, out, _ = _run(capsys, *argv, *(["--json"] if as_json else []))
    assert code in (0, 2)
    if code == 0 and as_json:
        assert all(h["source"].endswith("garden.pdf") for h in json.loads(out))


def test_real_argv_bytes_through_the_installed_command(tmp_path: Path, pdf_bytes: bytes) -> None:
    """Bytes no UTF-8 locale can decode, in a file name and in the query, through a real argv."""
    docs = tmp_path / "docs"
    docs.mkdir()
    hostile = os.path.join(os.fsencode(docs), b"\xff\xfe\x1b]0;owned\x07.pdf")
    with open(hostile, "wb") as f:
        f.write(pdf_bytes)
    (docs / "garden.pdf").write_bytes(pdf_bytes)
    env = {**os.environ, "PYTHONUTF8": "1", "LC_ALL": "C.UTF-8"}
    base = [os.fsencode(sys.executable), b"-m", b"pagesight"]
    store = os.fsencode(tmp_path / "store")
    runs = [
        [b"index", os.fsencode(docs), b"--store", store, b"-q"],
        [b"sources", b"--store", store],
        [b"search", b"\xff\xfe tomatoes \x1b[2J", b"--store", store, b"--mode", b"bm25"],
        [b"delete", hostile, b"--store", store],
    ]
    for argv in runs:
        proc = subprocess.run(base + argv, capture_output=True, env=env, timeout=300)
        assert proc.returncode in (0, 1, 2), proc.stderr
        assert b"Traceback" not in proc.stderr, proc.stderr
        for stream in (proc.stdout, proc.stderr):
            assert b"\x1b" not in stream and b"\x07" not in stream and b"\xc2\x9b" not in stream
    proc = subprocess.run(base + [b"sources", b"--store", store, b"--json"], capture_output=True, env=env)
    listed = {s["source"] for s in json.loads(proc.stdout)}
    assert str(docs / "garden.pdf") in listed and os.fsdecode(hostile) not in listed
