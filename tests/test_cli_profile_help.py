"""``--help`` and the README describe the profiles as ``pagesight/profiles.py`` defines them.

``pagesight/profiles.py`` is the source of truth: the help of every command that takes
``--profile`` lists each profile with its one-line description, and the README's Profiles table
names, for each profile, the same embedder, reranker and generator.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from pagesight.cli import build_parser
from pagesight.profiles import AUTO_DESCRIPTION, PROFILES, Profile

ROOT = Path(__file__).resolve().parents[1]


def _flat(text: str) -> str:
    return " ".join(text.split())


def _help(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command].format_help()


def _profile_option(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    action = next(a for a in sub.choices[command]._actions if "--profile" in a.option_strings)
    assert action.help
    return action.help


def _model_name(spec: str) -> str:
    """``ollama:gemma3:4b`` -> ``gemma3:4b``; ``hf:Qwen/Qwen3-VL-2B-Instruct`` -> ``Qwen3-VL-2B-Instruct``."""
    name = spec.split(":", 1)[1] if spec.startswith(("ollama:", "hf:")) else spec
    return name.rsplit("/", 1)[-1]


def _readme_profile_rows() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Profiles", 1)[1].split("\n### ", 1)[0]
    return {m.group(1): m.group(2) for m in re.finditer(r"^\| `([\w-]+)`[^|]*\|(.*)$", section, re.MULTILINE)}


@pytest.mark.parametrize("command", ["index", "search", "ask", "eval"])
def test_help_lists_every_profile_with_its_description(command: str) -> None:
    text = _flat(_help(command))
    for profile in PROFILES.values():
        assert f"{profile.name} {_flat(profile.description)}" in text, (command, profile.name)
    assert f"auto {_flat(AUTO_DESCRIPTION)}" in text


def test_ask_profile_option_says_it_brings_the_generator_as_the_readme_does() -> None:
    ask = _flat(_profile_option("ask"))
    assert ask.startswith("take the generator, reranker and remote-code consent of a profile")
    assert "default: none: extractive answers, no reranker" in ask
    assert all(name in ask for name in [*PROFILES, "auto"])
    search = _flat(_profile_option("search"))
    assert "generator" not in search and search.startswith("take the reranker and remote-code consent")
    readme = _flat((ROOT / "README.md").read_text(encoding="utf-8"))
    assert "on `ask` and `serve`, `--profile` also brings the profile's generator" in readme
    assert "`--profile gpu` brings its reranker and that consent" in readme


def test_readme_profile_table_matches_profiles_py() -> None:
    rows = _readme_profile_rows()
    assert sorted(rows) == sorted([*PROFILES, "auto"])
    for profile in PROFILES.values():
        row = rows[profile.name].lower()
        assert _model_name(profile.embedder).lower() in row, (profile.name, profile.embedder)
        assert _model_name(profile.generator).lower() in row, (profile.name, profile.generator)
        if profile.reranker:
            assert profile.reranker in row, (profile.name, profile.reranker)
        else:
            assert "rerank" not in row, profile.name


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
def test_each_description_names_the_profiles_generator_and_reranker(profile: Profile) -> None:
    description = profile.description.lower()
    assert _model_name(profile.generator).lower() in description
    assert (profile.reranker or "no reranker") in description or profile.reranker is None
    assert "bundled" not in description  # the weights come with an extra, not with the core install
