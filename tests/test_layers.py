"""Framework code lives only under ``pagesight/integrations/``; the old paths of moved modules still work."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pagesight"
FRAMEWORKS = ("langchain", "llama_index")


def _is_framework(module: str) -> bool:
    return module.split(".")[0].startswith(FRAMEWORKS)


def _imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Every module a file imports: ``import x``, ``from x import y``, ``importlib.import_module("x")``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def test_no_module_outside_integrations_imports_a_framework() -> None:
    problems = []
    scanned = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "integrations":
            continue
        scanned += 1
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        problems += [
            f"{rel.as_posix()}:{line} imports {name}" for line, name in _imports(tree) if _is_framework(name)
        ]
    assert scanned > 40
    assert problems == [], "framework imports outside pagesight/integrations/:\n" + "\n".join(problems)


def test_the_scan_catches_every_import_form() -> None:
    code = "import langchain_core\nfrom llama_index.core import Settings\n"
    code += "importlib.import_module('langchain_ollama')\n"
    assert [name for _, name in _imports(ast.parse(code))] == [
        "langchain_core",
        "llama_index.core",
        "langchain_ollama",
    ]


MOVED = [
    (
        "pagesight.pipelines.langchain_chain",
        "pagesight.integrations.langchain.chain",
        "build_langchain_chain",
    ),
    (
        "pagesight.pipelines.llamaindex_engine",
        "pagesight.integrations.llama_index.query_engine",
        "build_llamaindex_query_engine",
    ),
    (
        "pagesight.pipelines.llamaindex_engine",
        "pagesight.integrations.llama_index.query_engine",
        "PageQueryEngine",
    ),
    ("pagesight.pipelines.hf", "pagesight.models.generate.hf", "TransformersGenerator"),
    ("pagesight.pipelines.hf", "pagesight.models.generate.hf", "KNOWN_VLMS"),
    ("pagesight.pipelines.ollama", "pagesight.models.generate.ollama", "OllamaGenerator"),
    ("pagesight.pipelines.generators", "pagesight.models.generate", "make_generator"),
    ("pagesight.pipelines.generators", "pagesight.models.generate", "parse_generator_spec"),
    ("pagesight.pipelines.generators", "pagesight.models.generate", "GENERATOR_HELP"),
    ("pagesight.pipelines._retrieve", "pagesight.integrations._convert", "page_hit"),
    ("pagesight.pipelines._retrieve", "pagesight.integrations._convert", "hit_metadata"),
]


@pytest.mark.parametrize(("old", "new", "name"), MOVED)
def test_old_paths_re_export_the_moved_names(old: str, new: str, name: str) -> None:
    assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(new), name)


def test_old_paths_import_no_framework_until_a_name_is_used() -> None:
    code = textwrap.dedent(
        """
        import sys
        import pagesight.pipelines.langchain_chain, pagesight.pipelines.llamaindex_engine
        import pagesight.pipelines.hf, pagesight.pipelines.ollama, pagesight.pipelines.generators
        print("LOADED", sorted({m.split(".")[0] for m in sys.modules} & {"langchain_core", "llama_index"}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout
