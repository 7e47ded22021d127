"""The `aik` command line: help, configure, params, bad arguments, unbuilt steps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aik.cli import main


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m aik` in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "aik", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_help_lists_every_subcommand() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("configure", "params", "ingest", "features", "train", "demo"):
        assert command in out.stdout


@pytest.mark.parametrize("command", ["configure", "params", "ingest", "features", "train", "demo"])
def test_each_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: aik " + command in capsys.readouterr().out


def test_configure_then_params_prints_every_parameter(workspace: Path) -> None:
    assert run_cli("--workspace", str(workspace), "configure").returncode == 0
    out = run_cli("--workspace", str(workspace), "params")
    assert out.returncode == 0
    lines = dict(line.split("=", 1) for line in out.stdout.splitlines())
    assert len(lines) == 13
    assert lines["/aik/data-bucket"] == str(workspace / "bucket")
    assert lines["/aik/xgboost/path"] == f"{workspace}/bucket/binary-model/xgboost.bin"


def test_params_of_one_name_with_or_without_prefix(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--workspace", str(workspace), "configure"]) == 0
    capsys.readouterr()
    assert main(["--workspace", str(workspace), "params", "raw_data"]) == 0
    assert capsys.readouterr().out == f"/aik/raw_data={workspace}/bucket/raw/ipinyou-data/\n"


def test_workspace_from_the_environment(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIK_WORKSPACE", str(workspace))
    assert main(["configure"]) == 0
    assert (workspace / "parameters.json").is_file()


def test_params_before_configure_is_a_one_line_error(workspace: Path) -> None:
    out = run_cli("--workspace", str(workspace), "params", "/aik/xgboost/path")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"aik params: parameter /aik/xgboost/path is not set in the local parameter store "
        f"at {workspace / 'parameters.json'} (run `aik configure` first)"
    ]


def test_unknown_subcommand_exits_non_zero_with_usage() -> None:
    out = run_cli("frobnicate")
    assert out.returncode == 2
    assert out.stderr.startswith("usage: aik")
    assert "invalid choice: 'frobnicate'" in out.stderr


def test_missing_subcommand_exits_non_zero_with_usage() -> None:
    out = run_cli()
    assert out.returncode == 2
    assert "usage: aik" in out.stderr


def test_bad_backend_is_rejected() -> None:
    out = run_cli("--backend", "gcp", "params")
    assert out.returncode == 2
    assert "invalid choice: 'gcp'" in out.stderr
