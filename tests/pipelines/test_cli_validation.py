"""Bad command-line values are usage errors (exit 2) that say what is wrong (issue 15, items 10 and 13)."""

from __future__ import annotations

import argparse

import pytest

from pagesight.cli import build_parser, main
from pagesight.documents.sources import SUPPORTED_EXTENSIONS


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse's usage errors
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", [["search", "q"], ["ask", "q"], ["serve"]])
@pytest.mark.parametrize("k", ["0", "-3", "two"])
def test_k_below_one_is_a_usage_error(tmp_path, capsys, command, k):
    code, _, err = run(capsys, *command, "--store", str(tmp_path / "store"), "-k", k)
    assert code == 2
    assert "argument -k:" in err and ("at least 1" in err or "whole number" in err)
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    "command", [["index", "x.pdf"], ["search", "q"], ["ask", "q"], ["sources"], ["check"]]
)
def test_store_that_is_a_regular_file_is_a_usage_error(tmp_path, capsys, command):
    afile = tmp_path / "notes.txt"
    afile.write_text("not a store")
    code, _, err = run(capsys, *command, "--store", str(afile))
    assert code == 2
    assert f"{afile} is a file, not a store folder" in err
    assert "Traceback" not in err and "FileExistsError" not in err
    assert afile.read_text() == "not a store"


def test_missing_sources_are_named_once_and_create_no_store(tmp_path, capsys):
    store = tmp_path / "store"
    missing = tmp_path / "nonexistent.pdf"
    code, _, err = run(capsys, "index", str(missing), str(tmp_path / "gone.png"), "--store", str(store), "-q")
    assert code == 1
    assert err.count(str(missing)) == 1, err
    assert f"FAILED {missing}: no such file or folder" in err
    assert "0 source(s) indexed (0 pages), 0 unchanged, 2 failed" in err
    assert not store.exists()


def test_a_missing_source_beside_a_good_one_is_named_once(tmp_path, corpus, capsys):
    store = tmp_path / "store"
    missing = tmp_path / "nonexistent.pdf"
    code, _, err = run(capsys, "index", str(corpus["garden"]), str(missing), "--store", str(store), "-q")
    assert code == 1
    assert err.count(str(missing)) == 1, err
    assert "1 source(s) indexed" in err and store.is_dir()


def test_one_list_of_supported_extensions():
    from pagesight.ui.app import UPLOAD_TYPES

    assert set(UPLOAD_TYPES) == SUPPORTED_EXTENSIONS


def test_no_supported_files_message_lists_every_extension(tmp_path, capsys):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.docx").write_bytes(b"PK")
    code, _, err = run(capsys, "index", str(folder), "--store", str(tmp_path / "store"), "-q")
    assert code == 1
    for ext in SUPPORTED_EXTENSIONS:
        assert ext in err, (ext, err)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("name", ["pagesight", *sorted(_subcommands(build_parser()))])
def test_every_argument_has_help_and_shows_its_default(name):
    parser = build_parser() if name == "pagesight" else _subcommands(build_parser())[name]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        what = f"{name} {'/'.join(action.option_strings) or action.dest}"
        assert action.help and action.help.strip(), f"{what}: no help text"
        if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS):
            assert "%(default)" in action.help or "default" in action.help, f"{what}: default not shown"
    text = parser.format_help()
    assert "default" in text
