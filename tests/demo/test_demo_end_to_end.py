"""`aik demo` end to end on small data: every step runs, the swap happens, the summary's sources exist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aik.cli import main


@pytest.mark.slow
def test_demo_runs_end_to_end_and_reuses_its_steps(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--workspace", str(workspace), "demo", "--rows", "20000", "--requests", "20000", "--no-synth"]
    assert main(args) == 0
    summary = json.loads((workspace / "demo" / "summary.json").read_text())
    assert summary["errors"] == 0
    assert summary["swap"]["canary"]["versions"] == [summary["swap"]["from"], summary["swap"]["to"]]
    assert summary["swap"]["canary"]["errors"] == 0
    assert summary["dashboard"]["total_requests"] >= 20000
    for name, uri in summary["artifacts"].items():
        if isinstance(uri, str):
            assert Path(uri).exists(), name
    ab, aa = summary["abtest"]["experiments"]
    assert ab["winner"] == "champion" and ab["truth_difference"] > 0  # the truth: the weak model is worse
    assert not aa["significant"] and aa["champion"] == aa["challenger"]
    metrics = json.loads(Path(summary["artifacts"]["metrics"]).read_text())
    assert metrics["auc"] == summary["auc"]
    capsys.readouterr()
    assert main(args) == 0  # the second run reuses the data, features and models
    steps = json.loads((workspace / "demo" / "summary.json").read_text())["steps"]
    reused = [name for name, s in steps.items() if s["reused"]]
    assert reused == ["ingest", "features", "train", "retrain", "weak"]
