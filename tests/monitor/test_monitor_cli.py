"""`aik monitor` on the command line: usage on bad arguments, a one-line error on bad input, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aik.cli import main

from .test_monitor_join import _experiment_data, _logs, _write_predictions


def test_a_bad_alpha_prints_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["monitor", "--alpha", "2"])
    assert exit_.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_no_prediction_log_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--workspace", str(tmp_path), "configure"]) == 0
    capsys.readouterr()
    assert main(["--workspace", str(tmp_path), "monitor", "--logs", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aik monitor: no prediction records under")


def test_the_report_is_printed_and_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    auctions, records, win, click = _experiment_data(600, seed=3)
    _logs(str(tmp_path / "logs"), auctions, list(win), list(click))
    _write_predictions(str(tmp_path / "workspace" / "predictions"), records)
    workspace = str(tmp_path / "workspace")
    assert main(["--workspace", workspace, "configure"]) == 0
    capsys.readouterr()
    code = main(
        [
            "--workspace",
            workspace,
            "monitor",
            "--logs",
            str(tmp_path / "logs"),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "verdict: challenger vs champion" in out
    doc = json.loads((tmp_path / "out" / "monitor-report.json").read_text())
    assert doc["experiment"] == "exp" and doc["inputs"]["requests"] == 600
