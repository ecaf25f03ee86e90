"""The example scripts say what they need: the extra that installs their imports, and an Ollama server.

``tests/test_examples.py`` runs each script's working form; these tests cover what a new user meets
first: a script started without its Ollama client, or without a server, exits with a message that
names the fix (not a traceback), and ``examples/README.md`` says which scripts need a server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.pipelines.conftest import NETWORK, write_pdf

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CHAIN_EXAMPLES = [
    ("langchain_chain.py", "langchain_ollama"),
    ("llamaindex_engine.py", "llama_index.llms.ollama"),
]


def _run_without(script: str, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``examples/script`` in a fresh interpreter where ``module`` cannot be imported."""
    path = str(EXAMPLES / script)
    code = (
        "import runpy, sys\n"
        f"sys.modules[{module!r}] = None  # as if the package were not installed\n"
        f"sys.argv = [{path!r}, *{list(args)!r}]\n"
        f"runpy.run_path({path!r}, run_name='__main__')\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("script", "module"), CHAIN_EXAMPLES)
def test_chain_example_without_its_ollama_client_prints_the_install_line(script: str, module: str) -> None:
    proc = _run_without(script, module)
    assert proc.returncode == 1, proc.stderr
    assert f"{script} needs {module}" in proc.stderr
    assert 'pip install "pagesight[examples]"' in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def test_the_examples_extra_installs_what_the_scripts_import() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    wanted = " ".join(extras["examples"])
    for package in ("langchain-ollama", "llama-index-llms-ollama"):
        assert package in wanted
    for extra in ("langchain", "llamaindex", "chroma", "ollama", "offline", "ui"):  # what the scripts use
        assert re.search(rf"pagesight\[[^\]]*\b{extra}\b", wanted), extra
    assert re.search(r"pagesight\[[^\]]*\bexamples\b", " ".join(extras["all"])), "all must include examples"


def test_examples_readme_says_which_scripts_need_an_ollama_server() -> None:
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+\.py)` \|([^|]*)\|", readme, re.MULTILINE)}
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert sorted(rows) == scripts, "every script has a row in examples/README.md"
    for script in scripts:
        needs_server = "OLLAMA_HOST" in (EXAMPLES / script).read_text(encoding="utf-8")
        assert ("Ollama server" in rows[script]) == needs_server, (script, rows[script])
    assert "Each runs offline" not in readme, "three scripts need a server: not every one runs offline"
    assert "Three need a running [Ollama]" in readme


@pytest.mark.slow
def test_llamaindex_example_without_a_server_says_how_to_start_one(tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "network.pdf", NETWORK)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "llamaindex_engine.py"), "--sources", str(pdf)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OLLAMA_HOST": "http://127.0.0.1:9"},  # nothing listens on the discard port
    )
    assert proc.returncode == 1, proc.stderr
    assert "ollama serve" in proc.stderr and "ollama pull gemma3:4b" in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
