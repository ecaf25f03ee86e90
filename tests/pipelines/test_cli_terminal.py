"""Hostile file names, page text and queries never reach the terminal raw; ``--json`` stays exact."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pagesight.cli import main
from tests.pipelines.conftest import GARDEN, write_pdf

# What a terminal acts on: C0 controls but newline, DEL, C1 controls (CSI 0x9b), bidi controls,
# zero-width and BOM format characters, line separators, lone surrogates.
RAW = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ufeff\ud800-\udfff]"
)
HOSTILE_NAME = "garden\x1b]0;owned\x07\x1b[2J\x9b31m\u202efdp.pdf"
PAGE_TEXT = "Tomatoes need staking. \x1b]0;page-title\x07 Hidden \x1b[2J clear."


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean(*texts: str) -> None:
    for text in texts:
        found = RAW.search(text)
        assert found is None, f"raw {found.group()!r} in output: {text!r}"


@pytest.fixture
def hostile(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    pdf = write_pdf(docs / HOSTILE_NAME, [PAGE_TEXT, GARDEN[1], None])  # page 3: image only
    return pdf, tmp_path / "store"


def test_index_sources_search_ask_delete_escape_a_hostile_name_and_text(hostile, capsys):
    pdf, store = hostile
    name = str(pdf)
    code, out, err = run(capsys, "index", str(pdf.parent), "--store", str(store), "-q")
    assert code == 0, err
    assert_clean(out, err)
    assert "\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u202efdp.pdf" in err  # shown, visibly escaped

    code, out, err = run(capsys, "sources", "--store", str(store))
    assert code == 0 and "\\x1b]0;owned" in out
    assert_clean(out, err)
    code, out, _ = run(capsys, "sources", "--store", str(store), "--json")
    assert_clean(out)
    assert json.loads(out) == [{"source": name, "pages": 3}]  # exact name, not the escaped one

    for query in ("staking tomatoes", "hidden \x1b[2J clear \x07"):
        code, out, err = run(capsys, "search", query, "--store", str(store), "-k", "2")
        assert code == 0, err
        assert_clean(out, err)
        assert "\\x1b]0;page-title\\x07" in out or "\\x1b]0;owned" in out
    code, out, _ = run(capsys, "search", "staking tomatoes", "--store", str(store), "--json")
    assert_clean(out)
    hits = json.loads(out)
    assert hits[0]["source"] == name and "\x1b]0;page-title\x07" in hits[0]["text"]  # exact text

    code, out, err = run(capsys, "ask", "Why stake \x1b[2J tomatoes?", "--store", str(store), "-k", "2")
    assert code == 0, err
    assert_clean(out, err)
    code, out, _ = run(capsys, "ask", "Why stake tomatoes?", "--store", str(store), "--json")
    assert_clean(out)
    assert HOSTILE_NAME in json.loads(out)["answer"]  # the extractive answer quotes the exact name

    code, out, err = run(capsys, "delete", name + "\x1b[1A", "--store", str(store))
    assert code == 1 and "not in store: " in err
    assert_clean(out, err)
    code, out, err = run(capsys, "delete", name, "--store", str(store))
    assert code == 0 and "deleted " in err and "(3 pages)" in err
    assert_clean(out, err)


def test_ask_lists_the_sources_of_a_name_with_brackets(tmp_path, capsys):
    pdf = write_pdf(tmp_path / "report [final].pdf", GARDEN)
    store = str(tmp_path / "store")
    assert run(capsys, "index", str(pdf), "--store", store, "-q")[0] == 0
    code, out, _ = run(capsys, "ask", "Why stake tomatoes?", "--store", store, "-k", "2", "--json")
    assert code == 0 and json.loads(out)["citations"][0]["source"] == str(pdf)


def test_failures_and_usage_errors_are_escaped(tmp_path, capsys):
    bad = tmp_path / "bad\x1b]0;x\x07.pdf"
    bad.write_text("<!doctype html>not a pdf \x1b[2J")
    code, out, err = run(capsys, "index", str(bad), "--store", str(tmp_path / "store"), "-q")
    assert code == 1 and "FAILED " in err and "bad\\x1b]0;x\\x07.pdf" in err
    assert_clean(out, err)
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "x", "--mode", "\x1b[2J"])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert "invalid choice: '\\x1b[2J'" in err
    assert_clean(out, err)
    code, out, err = run(capsys, "sources", "--store", str(tmp_path / "none\x1b[2J"))
    assert code == 2 and "none\\x1b[2J" in err
    assert_clean(out, err)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUTF8": "1", "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}


def test_log_lines_escape_names_through_the_real_command(hostile):
    """With -v the page warnings of a hostile name go through the log handler: escaped there too."""
    pdf, store = hostile
    cmd = [sys.executable, "-m", "pagesight", "-v", "index", str(pdf), "--store", str(store), "-q"]
    proc = subprocess.run(cmd, capture_output=True, env=_env())
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.decode("utf-8", "surrogateescape")
    assert "INFO pagesight" in err and "\\x1b]0;owned" in err
    assert_clean(err)
    assert b"\x1b" not in proc.stderr and b"\x07" not in proc.stderr and b"\xc2\x9b" not in proc.stderr


def test_a_query_that_is_not_utf8_in_argv_searches_with_replacement_characters(tmp_path, corpus):
    store = tmp_path / "store"
    index = [sys.executable, "-m", "pagesight", "index", str(corpus["garden"]), "--store", str(store), "-q"]
    assert subprocess.run(index, capture_output=True, env=_env()).returncode == 0
    for command in ("search", "ask"):
        query = b"\xff\xfe tomatoes staked \xc3"  # bytes a UTF-8 locale cannot decode
        argv = [os.fsencode(sys.executable), b"-m", b"pagesight", command.encode(), query]
        argv += [b"--store", os.fsencode(store), b"-k", b"1", b"--json"]
        proc = subprocess.run(argv, capture_output=True, env=_env())
        assert proc.returncode == 0, proc.stderr
        assert b"Traceback" not in proc.stderr
        assert b"not valid UTF-8; invalid bytes replaced" in proc.stderr
        result = json.loads(proc.stdout)
        hits = result if command == "search" else result["citations"]
        assert hits[0]["source"] == str(corpus["garden"]) and hits[0]["page"] == 1


def test_every_print_in_the_cli_goes_through_the_terminal_helper():
    """cli.py and the serve command write only through ``_out``/``_out_json``/``_write`` (which escape)."""
    root = Path(__file__).resolve().parents[2] / "pagesight"
    allowed = {"_write", "_out", "_out_json", "_print_message"}
    for path in (root / "cli.py", root / "ui" / "command.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if name not in ("print", "write", "writelines"):
                continue
            scope = parents.get(node)
            while scope is not None and not isinstance(scope, ast.FunctionDef):
                scope = parents.get(scope)
            where = f"{path.name}:{node.lineno}"
            assert scope is not None and scope.name in allowed, f"raw {name}() at {where}"
    source = (root / "cli.py").read_text(encoding="utf-8")
    assert "safe(text, multiline=multiline)" in source and "safe_json(obj" in source


def test_warnings_shown_during_a_command_are_one_escaped_line(capsys):
    import warnings

    from pagesight.cli import _show_warning

    before = warnings.showwarning
    _show_warning(UserWarning("skipping bad\x1b[2J.png\n(page 2)"), UserWarning, "x.py", 3)
    err = capsys.readouterr().err
    assert err == "x.py:3: UserWarning: skipping bad\\x1b[2J.png\\x0a(page 2)\n"
    assert main(["sources", "--store", "/nonexistent/store"]) == 2
    assert warnings.showwarning is before  # main puts the previous hook back


def test_a_warning_raised_inside_a_command_comes_out_as_one_escaped_line(hostile, capsys, monkeypatch):
    import warnings

    from pagesight.retrieval.store import PageStore

    pdf, store = hostile
    assert run(capsys, "index", str(pdf.parent), "--store", str(store), "-q")[0] == 0
    real = PageStore.sources

    def sources_that_warn(self: PageStore) -> list:  # the real listing, plus a warning naming a file
        warnings.warn(f"odd name {pdf.name}\nsecond line", UserWarning, stacklevel=1)
        return real(self)

    monkeypatch.setattr(PageStore, "sources", sources_that_warn)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code, out, err = run(capsys, "sources", "--store", str(store))
    assert code == 0 and "3 " in out
    assert_clean(out, err)
    [line] = [x for x in err.splitlines() if "UserWarning" in x]  # one line, not Python's two
    assert line.endswith(
        "UserWarning: odd name garden\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u202efdp.pdf\\x0asecond line"
    )
