"""bench/families.py's helpers: rows per world, a subset of candidates, resuming from earlier output."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import yaml

BENCH = Path(__file__).resolve().parents[2] / "bench" / "families.py"


@pytest.fixture(scope="module")
def families() -> ModuleType:
    """The bench script as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_families", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rows_given_once_apply_to_every_world(families: ModuleType) -> None:
    assert families.parse_rows("100000", ["default", "interactions"]) == {
        "default": 100_000,
        "interactions": 100_000,
    }


def test_rows_per_world_leave_the_others_at_the_default(families: ModuleType) -> None:
    assert families.parse_rows("interactions=800000", ["default", "interactions"]) == {
        "default": 200_000,
        "interactions": 800_000,
    }


def test_rows_of_an_unknown_world_are_refused(families: ModuleType) -> None:
    with pytest.raises(SystemExit, match="unknown world 'additive'"):
        families.parse_rows("additive=1000", ["default"])


def test_candidates_keep_the_named_ones_in_the_given_order(families: ModuleType, tmp_path: Path) -> None:
    source = tmp_path / "all.yaml"
    source.write_text(
        yaml.safe_dump(
            {
                "name": "families",
                "candidates": [{"model": "xgboost"}, {"name": "wd", "model": "wide-deep"}, {"model": "fm"}],
            }
        )
    )
    out = families.select_candidates(source, "fm,wd", tmp_path / "chosen.yaml")
    doc = yaml.safe_load(out.read_text())
    assert doc["name"] == "families"
    assert doc["candidates"] == [{"model": "fm"}, {"name": "wd", "model": "wide-deep"}]


def test_candidates_not_in_the_file_are_refused(families: ModuleType, tmp_path: Path) -> None:
    source = tmp_path / "all.yaml"
    source.write_text(yaml.safe_dump({"candidates": [{"model": "xgboost"}]}))
    with pytest.raises(SystemExit, match="spark-mlp not in"):
        families.select_candidates(source, "xgboost,spark-mlp", tmp_path / "chosen.yaml")


def test_no_candidates_named_keeps_the_file(families: ModuleType, tmp_path: Path) -> None:
    source = tmp_path / "all.yaml"
    assert families.select_candidates(source, None, tmp_path / "chosen.yaml") == source


def test_earlier_output_yields_each_finished_world_and_seed(families: ModuleType, tmp_path: Path) -> None:
    # a run cut short: seed 2 printed its steps but not its report, so only seed 1 finished
    output = tmp_path / "run.out"
    report = {"world": "interactions", "seed": 0, "candidates": [], "rows": 400_000}
    output.write_text(
        "\n".join(
            [
                "# interactions seed 1: features 300 s, load 1.00 2.00 3.00",
                "# interactions seed 1: load 1 -> 2",
                json.dumps(report),
                "# interactions seed 2: features 310 s, load 1.00 2.00 3.00",
            ]
        )
    )
    finished = families.summarize([str(output)])
    assert list(finished) == ["interactions"]
    assert list(finished["interactions"]) == [1]
    assert finished["interactions"][1]["rows"] == 400_000


def _report(world: str, rows: int, oracle: float, *names: str) -> str:
    candidates = [{"name": n, "ok": True, "auc": 0.7} for n in names]
    return json.dumps(
        {"world": world, "rows": rows, "reference": {"oracle_auc": oracle}, "candidates": candidates}
    )


def test_backtests_of_one_world_and_seed_on_the_same_rows_are_merged(
    families: ModuleType, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.out", tmp_path / "b.out"
    first.write_text("# interactions seed 1: backtest 9 s\n" + _report("interactions", 400, 0.8, "wd", "fm"))
    second.write_text(
        "# interactions seed 1: backtest 9 s\n" + _report("interactions", 400, 0.8, "fm", "mlp")
    )
    merged = families.summarize([str(first), str(second)])["interactions"][1]
    assert [c["name"] for c in merged["candidates"]] == ["wd", "fm", "mlp"]


def test_one_seed_on_different_rows_is_refused(families: ModuleType, tmp_path: Path) -> None:
    first, second = tmp_path / "a.out", tmp_path / "b.out"
    first.write_text("# interactions seed 1: backtest 9 s\n" + _report("interactions", 100, 0.8, "wd"))
    second.write_text("# interactions seed 1: backtest 9 s\n" + _report("interactions", 400, 0.79, "wd"))
    with pytest.raises(SystemExit, match="summarize them apart"):
        families.summarize([str(first), str(second)])


def test_a_candidate_missing_from_a_seed_shows_as_not_run(
    families: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def report(seed: int, *names: str) -> str:
        doc = json.loads(_report("interactions", 400, 0.8, *names))
        for c in doc["candidates"]:
            c.update(oracle_ratio=0.9, train_s=1.0, interaction_share=0.5)
        doc.update(load_before="1", load_after="1")
        return f"# interactions seed {seed}:\n" + json.dumps(doc)

    (tmp_path / "a.out").write_text(report(1, "wd", "fm"))
    (tmp_path / "b.out").write_text(report(2, "wd"))
    families.tables(families.summarize([str(tmp_path / "a.out"), str(tmp_path / "b.out")]))
    fm = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| fm "))
    assert fm.split(" | ")[1:3] == ["0.9000", "not run"]
