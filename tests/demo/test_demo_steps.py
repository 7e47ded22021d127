"""The demo's step runner: reuse when inputs match and outputs exist, failures name their step."""

from __future__ import annotations

from pathlib import Path

import pytest

from aik.context import Context
from aik.errors import AikError
from aik.settings import Settings
from demo.run import DemoConfig, DemoRun, StepFailed


def _run(workspace: Path, fresh: bool = False) -> DemoRun:
    return DemoRun.open(Context(Settings(workspace=workspace)), DemoConfig(fresh=fresh))


def test_a_step_is_reused_only_with_the_same_key_and_its_outputs(workspace: Path) -> None:
    calls: list[str] = []
    out = workspace / "out.txt"

    def make() -> dict[str, str]:
        calls.append("run")
        out.write_text("x")
        return {"path": str(out)}

    def valid(result: dict[str, str]) -> bool:
        return Path(result["path"]).exists()

    assert _run(workspace).step("s", "k1", make, valid) == {"path": str(out)}
    second = _run(workspace)
    second.step("s", "k1", make, valid)
    assert calls == ["run"] and second.steps["s"].reused
    _run(workspace).step("s", "k2", make, valid)  # new inputs
    assert calls == ["run", "run"]
    out.unlink()
    _run(workspace).step("s", "k2", make, valid)  # outputs gone
    assert calls == ["run"] * 3
    _run(workspace, fresh=True).step("s", "k2", make, valid)  # told to start over
    assert calls == ["run"] * 4


def test_a_step_without_key_always_runs(workspace: Path) -> None:
    calls: list[int] = []
    for _ in range(2):
        _run(workspace).step("serve", None, lambda: calls.append(1) or {})
    assert calls == [1, 1]


def test_a_failing_step_names_itself_and_is_not_recorded(workspace: Path) -> None:
    def boom() -> dict[str, str]:
        raise AikError("parameter /aik/raw_data is not set")

    run = _run(workspace)
    with pytest.raises(StepFailed, match=r"step 'ingest' failed: parameter /aik/raw_data is not set"):
        run.step("ingest", "k", boom)
    assert "ingest" not in _run(workspace).state

    def crash() -> dict[str, str]:
        raise ZeroDivisionError("division by zero")

    with pytest.raises(StepFailed, match=r"step 'train' failed: ZeroDivisionError: division by zero"):
        run.step("train", "k", crash)
