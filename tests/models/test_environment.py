"""Per-model environments: the registry's table, the pagesight extras, the check and ``pagesight doctor``."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from pagesight.cli import main
from pagesight.errors import ModelNotAvailableError
from pagesight.models import environment
from pagesight.models.environment import check_environment, diagnose
from pagesight.models.registry import ENVIRONMENTS, MODELS, environment_for

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
EXTRAS = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]


def test_every_row_names_a_known_environment_and_previous_pins_too() -> None:
    for spec in MODELS.values():
        names = [spec.environment, *spec.previous_revisions.values()]
        for name in filter(None, names):
            assert name in ENVIRONMENTS, (spec.alias, name)
    nvidia = [s for s in MODELS.values() if s.backend in ("nvidia", "nv-embed", "e5-v") and s.revision]
    assert nvidia and all(s.environment for s in nvidia)


@pytest.mark.parametrize("name", sorted(n for n, e in ENVIRONMENTS.items() if "pagesight[" in e.pip))
def test_each_environment_is_an_extra_whose_transformers_pin_fits_the_row(name: str) -> None:
    env = ENVIRONMENTS[name]
    assert f'"pagesight[{name}]"' in env.pip
    requirements = [Requirement(r) for r in EXTRAS[name]]
    pinned = [r for r in requirements if r.name == "transformers"]
    assert len(pinned) == 1
    spec = pinned[0].specifier
    allowed = SpecifierSet(env.transformers, prereleases=True)
    exact = [s.version for s in spec if s.operator == "=="]
    lower = [s.version for s in spec if s.operator == ">="]
    assert all(v in allowed for v in exact + lower), (name, str(spec), env.transformers)
    named = {Requirement(p).name for p in env.packages}
    assert named <= {r.name for r in requirements}, (name, named)


def test_conflicting_extras_stay_out_of_all() -> None:
    everything = EXTRAS["all"][0]
    for name in ENVIRONMENTS:
        assert name not in everything


def test_matching_versions_pass_and_the_current_pin_is_what_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = MODELS["e5-v"]
    versions = {"transformers": "4.44.2"}
    monkeypatch.setattr(environment, "installed_version", lambda name: versions.get(name, "1.0"))
    assert diagnose(spec).ok
    check_environment(spec)
    versions["transformers"] = "4.45.0"
    with pytest.raises(ModelNotAvailableError, match=r"transformers 4\.45\.0 is installed"):
        check_environment(spec)


def test_previous_pins_have_their_own_environment() -> None:
    spec = MODELS["nemotron-colembed-vl-4b-v2"]
    assert environment_for(spec).name == "colembed-qwen"  # type: ignore[union-attr]
    old = "823b1625c15fe3da73fa094205e538a7a2301a2a"
    assert environment_for(spec, old).transformers == "==5.0.0rc0"  # type: ignore[union-attr]
    embed = MODELS["llama-nemotron-embed-vl-1b-v2"]
    assert environment_for(embed, "859e1f2dac29c56c37a5279cf55f53f3e74efc6b").name == "nvidia-vl-tf4"  # type: ignore[union-attr]


def test_skip_variable_lets_a_user_try_anyway(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelNotAvailableError, match="PAGESIGHT_SKIP_ENV_CHECK=1"):
        check_environment(MODELS["e5-v"])
    monkeypatch.setenv("PAGESIGHT_SKIP_ENV_CHECK", "1")
    check_environment(MODELS["e5-v"])


def test_doctor_prints_the_pip_line_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "nvidia/NV-Embed-v2"]) == 1
    out = capsys.readouterr().out
    assert "environment: nvembed" in out and 'fix: pip install "pagesight[nvembed]"' in out
    assert "transformers: >=4.42,<4.48" in out


def test_doctor_json_and_ok_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "all-minilm-l6-v2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["problems"] == [] and data["environment"] is None
    assert main(["doctor", "llama-nemoretriever-colembed-3b-v1", "--device", "cpu", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["flash_attn"] == "required" and "flash-attn --no-build-isolation" in data["pip"]
    assert data["revision"] == "4194bdd2cd2871f220ddba6273ce173ef1217a1e"
