"""The demo's step runner: reuse when inputs match and outputs exist, failures name their step."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from aik.context import Context
from aik.errors import AikError
from aik.settings import Settings
from demo.canary import CanaryReport
from demo.serve import Swap, SwapTiming
from demo.state import Record, StepFailed, StepRunner


@dataclass(frozen=True)
class Made(Record):
    path: str

    def outputs_exist(self) -> bool:
        return Path(self.path).exists()


def _run(workspace: Path, fresh: bool = False) -> StepRunner:
    return StepRunner.open(Context(Settings(workspace=workspace)), fresh=fresh)


def test_a_step_is_reused_only_with_the_same_key_and_its_outputs(workspace: Path) -> None:
    calls: list[str] = []
    out = workspace / "out.txt"

    def make() -> Made:
        calls.append("run")
        out.write_text("x")
        return Made(str(out))

    assert _run(workspace).step("s", "k1", Made, make, Made.outputs_exist) == Made(str(out))
    second = _run(workspace)
    assert second.step("s", "k1", Made, make, Made.outputs_exist) == Made(str(out))
    assert calls == ["run"] and second.steps["s"].reused
    _run(workspace).step("s", "k2", Made, make, Made.outputs_exist)  # new inputs
    assert calls == ["run", "run"]
    out.unlink()
    _run(workspace).step("s", "k2", Made, make, Made.outputs_exist)  # outputs gone
    assert calls == ["run"] * 3
    _run(workspace, fresh=True).step("s", "k2", Made, make, Made.outputs_exist)  # told to start over
    assert calls == ["run"] * 4


def test_a_step_without_key_always_runs(workspace: Path) -> None:
    calls: list[int] = []

    def make() -> Made:
        calls.append(1)
        return Made("x")

    for _ in range(2):
        _run(workspace).step("serve", None, Made, make)
    assert calls == [1, 1]


def test_a_record_that_no_longer_reads_runs_again(workspace: Path) -> None:
    (workspace / "demo").mkdir()
    old = {"s": {"key": "k", "seconds": 1.0, "result": {"report": {}}, "reused": False}}
    (workspace / "demo" / "state.json").write_text(json.dumps(old))
    calls: list[int] = []

    def make() -> Made:
        calls.append(1)
        return Made("x")

    assert _run(workspace).step("s", "k", Made, make) == Made("x") and calls == [1]


def test_a_failing_step_names_itself_and_is_not_recorded(workspace: Path) -> None:
    def boom() -> Made:
        raise AikError("parameter /aik/raw_data is not set")

    run = _run(workspace)
    with pytest.raises(StepFailed, match=r"step 'ingest' failed: parameter /aik/raw_data is not set"):
        run.step("ingest", "k", Made, boom)
    assert "ingest" not in _run(workspace).state

    def crash() -> Made:
        raise ZeroDivisionError("division by zero")

    with pytest.raises(StepFailed, match=r"step 'train' failed: ZeroDivisionError: division by zero"):
        run.step("train", "k", Made, crash)


def test_the_swap_reads_back_from_its_summary_form() -> None:
    swap = Swap(
        "aaa",
        "bbb",
        SwapTiming(
            published_after_requests=10,
            publish_seconds=0.5,
            picked_up_seconds=1.5,
            served_at_swap=40,
            emulator_running=True,
        ),
        CanaryReport(requests=100, errors=0, error_messages=[], versions=["aaa", "bbb"]),
    )
    document = json.loads(json.dumps(swap.to_dict()))
    assert document["from"] == "aaa" and document["canary"]["versions"] == ["aaa", "bbb"]
    assert Swap.from_dict(document) == swap
