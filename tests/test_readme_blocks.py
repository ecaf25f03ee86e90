"""Every ```python block of README.md runs as pasted, or says exactly what it needs.

A block whose fence line is directly preceded by ``<!-- not-run: REASON -->`` is not run; REASON
says what it needs (a CUDA GPU and weights, an Ollama or Chroma server, network, your own files).
Every other block runs offline, in README order, each in a fresh Python process, all in one
working folder, as a user pasting them one after another from the repository's root would: later
blocks may use what earlier ones wrote (the Python quickstart's ``store``, the late-interaction
``late``). That folder is a temporary one holding links to the repository's top-level files and
folders, so ``examples/R-FAQ.pdf`` resolves and nothing is written into the checkout.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*not-run:(.*?)-->\s*$")
BLOCK_TIMEOUT_S = 900  # a block that indexes the 125 example pages takes about a minute on 2 idle cores


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    code: str
    not_run: str | None  # the marker's reason, or None for a block that runs

    @property
    def name(self) -> str:
        return f"README.md:{self.line}"


def parse_readme(text: str) -> tuple[list[Block], list[int]]:
    """The ```python blocks of ``text`` and the lines of markers that precede no python block.

    Raises:
        AssertionError: a fence is left open.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    markers: list[int] = [i for i, line in enumerate(lines) if MARKER.match(line)]
    used: set[int] = set()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, lang = m.group(1), m.group(2)
        end = i + 1
        while end < len(lines) and not re.match(rf"^{re.escape(indent)}```\s*$", lines[end]):
            end += 1
        assert end < len(lines), f"README.md:{i + 1}: the ``` fence is never closed"
        if lang == "python":
            body = "\n".join(
                line[len(indent) :] if line.startswith(indent) else line for line in lines[i + 1 : end]
            )
            marker = MARKER.match(lines[i - 1]) if i > 0 else None
            if marker is not None:
                used.add(i - 1)
            blocks.append(Block(i + 1, body + "\n", marker.group(1).strip() if marker else None))
        i = end + 1
    return blocks, [n + 1 for n in markers if n not in used]


BLOCKS, STRAY_MARKERS = parse_readme(README.read_text(encoding="utf-8"))
RUNNABLE = [b for b in BLOCKS if b.not_run is None]


def test_readme_blocks_parse_and_every_one_runs_or_says_what_it_needs() -> None:
    assert len(BLOCKS) >= 10 and RUNNABLE, "README.md lost its python blocks (or the parser broke)"
    assert not STRAY_MARKERS, f"not-run markers not directly above a ```python fence: lines {STRAY_MARKERS}"
    for block in BLOCKS:
        if block.not_run is not None:
            assert len(block.not_run) >= 10, f"{block.name}: the not-run marker must say what the block needs"
        # marked blocks too must at least be Python (top-level await allowed: they may show async calls)
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if block.not_run else 0
        compile(block.code, block.name, "exec", flags=flags, dont_inherit=True)


def test_fences_are_spelled_python() -> None:
    """A ```py or ```python3 block would be skipped silently: the README spells them ```python."""
    odd = [
        (n, m.group(2))
        for n, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1)
        if (m := FENCE.match(line)) and m.group(2).lower().startswith("py") and m.group(2) != "python"
    ]
    assert not odd, odd


def test_parser_sees_markers_and_indented_fences() -> None:
    text = (
        "<!-- not-run: needs a running Ollama server -->\n```python\nimport ollama\n```\n\n"
        "- item\n\n  ```python\n  x = 1\n  ```\n"
        "<!-- not-run: dangling -->\n\n```bash\nls\n```\n"
    )
    blocks, stray = parse_readme(text)
    assert [(b.line, b.code, b.not_run) for b in blocks] == [
        (2, "import ollama\n", "needs a running Ollama server"),
        (8, "x = 1\n", None),
    ]
    assert stray == [11]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], dict[int, str]]:
    """The shared working folder (links to the checkout's top level), the environment, and the
    output of the blocks run so far (by line)."""
    base = tmp_path_factory.mktemp("readme")
    cwd, home = base / "cwd", base / "home"
    cwd.mkdir()
    home.mkdir()
    for entry in ROOT.iterdir():
        if not entry.name.startswith(".") and entry.name not in ("store", "late", "li-store"):
            (cwd / entry.name).symlink_to(entry)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("PAGESIGHT_STORE", None)
    return cwd, env, {}


def _run(block: Block, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = cwd.parent / f"block_{block.line}.py"
    script.write_text(block.code, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )


@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE, ids=[f"line{b.line}" for b in RUNNABLE])
def test_readme_block_runs_offline(
    block: Block, workdir: tuple[Path, dict[str, str], dict[int, str]]
) -> None:
    cwd, env, done = workdir
    for earlier in RUNNABLE[: RUNNABLE.index(block)]:
        if earlier.line not in done:  # run alone (-k): the earlier blocks first, as a reader would
            done[earlier.line] = _run(earlier, cwd, env).stdout
    proc = _run(block, cwd, env)
    done[block.line] = proc.stdout
    assert proc.returncode == 0, (
        f"{block.name} failed (exit {proc.returncode}); mark it <!-- not-run: REASON --> if it needs "
        f"more than an offline CPU:\n{block.code}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n"
        f"{proc.stderr[-6000:]}"
    )
    if 'Index.create("store", profile="offline")' in block.code:  # the quickstart prints its answer
        assert "[R-FAQ.pdf p.41" in proc.stdout, proc.stdout
