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


def test_bad_backend_in_the_environment_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIK_BACKEND", "gcp")
    out = subprocess.run([sys.executable, "-m", "aik", "params"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == ["aik params: unknown backend 'gcp' (choose from local, aws)"]


def test_a_file_as_workspace_is_a_one_line_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "passwd"
    not_a_dir.write_text("root:x:0:0\n")
    out = run_cli("--workspace", str(not_a_dir), "configure")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aik configure: ")
    assert str(not_a_dir) in lines[0]
    assert not_a_dir.read_text() == "root:x:0:0\n"


def test_a_non_utf8_parameter_file_is_a_one_line_error(workspace: Path) -> None:
    assert run_cli("--workspace", str(workspace), "configure").returncode == 0
    path = workspace / "parameters.json"
    path.write_bytes(b"\xff\xfe" + path.read_bytes())
    out = run_cli("--workspace", str(workspace), "params")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"aik params: local parameter store {path} is corrupt")


def test_an_unwritable_parameter_file_is_a_one_line_error(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    assert main(["--workspace", str(workspace), "configure"]) == 0
    capsys.readouterr()
    before = (workspace / "parameters.json").read_bytes()

    def read_only(src: str, dst: str) -> None:  # what a read-only file system answers (root ignores modes)
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", read_only)
    assert main(["--workspace", str(workspace), "configure"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aik configure: cannot write the local parameter store")
    assert "Permission denied" in err[0]
    assert (workspace / "parameters.json").read_bytes() == before
    assert [p.name for p in workspace.iterdir() if p.name.startswith(".parameters.")] == []
