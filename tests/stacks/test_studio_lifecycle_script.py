"""The Studio lifecycle script (stacks/studio_lifecycle/install-aik.sh), run for real against a local
directory standing in for the S3 copy, in fresh virtual environments standing in for the image."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from stacks import studio_lifecycle

REPO = Path(__file__).resolve().parents[2]


def run(script_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": script_env.pop("HOME", "/tmp"), **script_env}
    return subprocess.run(
        ["bash", str(studio_lifecycle.SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def kit_source(tmp_path: Path) -> Path:
    """What the stack deploys under `bootstrap/` (the kit's package and build files), as a directory."""
    source = tmp_path / "bootstrap"
    source.mkdir()
    shutil.copytree(REPO / "aik", source / "aik", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    return source


def image_env(path: Path, *packages: str) -> Path:
    """A fresh environment with `packages` preinstalled (the image's own), returning its interpreter."""
    venv.create(path, with_pip=True)
    python = path / "bin" / "python"
    if packages:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], check=True)
    return python


def versions(python: Path) -> dict[str, str]:
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split("==", 1) for line in listed.splitlines() if "==" in line)


def test_script_passes_shellcheck() -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    result = subprocess.run([str(shellcheck), str(studio_lifecycle.SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_script_without_a_source_prints_usage() -> None:
    result = run({})
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_script_refuses_a_source_without_the_kit(tmp_path: Path) -> None:
    result = run({"AIK_PYTHON": sys.executable}, str(tmp_path))
    assert result.returncode == 1
    assert "no pyproject.toml" in result.stderr


@pytest.mark.slow
def test_script_installs_the_kit_and_moves_no_preinstalled_package(tmp_path: Path, kit_source: Path) -> None:
    # the numpy that the v4 SageMaker Distribution images ship; the kit accepts it, and must keep it.
    python = image_env(tmp_path / "image", "numpy==1.26.4")
    before = versions(python)
    result = run({"AIK_PYTHON": str(python), "AIK_EXTRAS": ""}, str(kit_source))
    assert result.returncode == 0, result.stderr
    after = versions(python)
    assert {name: after.get(name) for name in before} == before
    assert "advertising-intelligence-kit" in after
    subprocess.run([str(python), "-c", "import aik.params, aik.storage, woothee"], check=True)


@pytest.mark.slow
def test_script_fails_rather_than_move_a_package_the_kit_needs_newer(
    tmp_path: Path, kit_source: Path
) -> None:
    python = image_env(tmp_path / "image", "woothee==1.8.0")  # the kit needs woothee>=1.10
    result = run({"AIK_PYTHON": str(python), "AIK_EXTRAS": ""}, str(kit_source))
    assert result.returncode == 1
    assert "the image's packages were left as they were" in result.stderr
    after = versions(python)
    assert after["woothee"] == "1.8.0"
    assert "advertising-intelligence-kit" not in after
