"""The monitor's join as a Spark job: the same rows, counts and report as the in-process join."""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aik import storage
from aik.cli import main
from aik.experiments import Arm, Experiment
from aik.monitor import MonitorOptions, run_monitor
from aik.monitor.table import COUNTS_FILE
from aik.predictions import Prediction
from demo.closed_loop import by_contract, release_model, run_closed_loop

from .conftest import AbWorld
from .test_monitor_join import _experiment_data, _logs, _write_predictions
from .test_monitor_spark_job import _messy_log

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    """A report without what names where it was written and read from."""
    inputs = {k: v for k, v in report["inputs"].items() if k != "joined"}
    return {**report, "inputs": inputs, "plots": {}}


def _both(options: MonitorOptions, table: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report of the in-process join and of the Spark job's table, as dicts."""
    pandas = run_monitor(options).to_dict()
    spark = run_monitor(replace(options, engine="spark", joined_out=str(table) + "/")).to_dict()
    return pandas, spark


def test_the_spark_report_of_a_closed_loop_equals_the_in_process_report(
    ab_world: AbWorld, spark: SparkSession, tmp_path: Path
) -> None:
    models = {r.id: release_model(ab_world.releases_root, r.id) for r in (ab_world.good, ab_world.blind)}
    experiment = Experiment(
        name="spark-vs-pandas",
        salt="salt-spark",
        arms=(Arm("champion", ab_world.good.id, 0.5), Arm("challenger", ab_world.blind.id, 0.5)),
    )
    loop = run_closed_loop(
        serve=by_contract(ab_world.releases_root, models),
        experiment=experiment,
        traffic=ab_world.traffic,
        truth=ab_world.truth,
        requests=5_000,
        seed=23,
        logs_root=str(tmp_path / "exchange"),
        predictions_root=str(tmp_path / "predictions"),
        out=None,
    )
    options = MonitorOptions(
        predictions=loop.predictions_root,
        logs=loop.logs_root,
        experiment=experiment.name,
        truth=loop.truth_uri,
    )
    pandas, spark_report = _both(options, tmp_path / "joined")
    # a report worth comparing: a verdict, segments, and what the truth says of each
    assert "truth" in pandas["verdicts"][0] and pandas["segments"]["advertiser"]
    assert _comparable(spark_report) == _comparable(pandas)


def test_the_spark_job_counts_and_keeps_what_the_in_process_join_does(
    spark: SparkSession, tmp_path: Path
) -> None:
    _messy_log(tmp_path)
    options = MonitorOptions(
        predictions=str(tmp_path / "predictions"), logs=str(tmp_path / "logs"), min_segment=20
    )
    pandas, spark_report = _both(options, tmp_path / "joined")
    counts = {k: pandas["inputs"][k] for k in ("prediction_records", "duplicate_records", "without_bid_line")}
    assert counts == {"prediction_records": 1_565, "duplicate_records": 40, "without_bid_line": 25}
    assert _comparable(spark_report) == _comparable(pandas)


def test_an_older_experiment_named_is_judged_alike(spark: SparkSession, tmp_path: Path) -> None:
    _messy_log(tmp_path)
    options = MonitorOptions(
        predictions=str(tmp_path / "predictions"),
        logs=str(tmp_path / "logs"),
        experiment="old",
        min_segment=20,
    )
    pandas, spark_report = _both(options, tmp_path / "joined")
    assert pandas["experiment"] == "old" and pandas["inputs"]["requests"] == 200
    assert _comparable(spark_report) == _comparable(pandas)


def test_without_a_bid_log_both_engines_take_the_hour_of_the_prediction(
    spark: SparkSession, tmp_path: Path
) -> None:
    _messy_log(tmp_path)
    shutil.rmtree(tmp_path / "logs" / "bid")
    options = MonitorOptions(
        predictions=str(tmp_path / "predictions"), logs=str(tmp_path / "logs"), min_segment=1
    )
    pandas, spark_report = _both(options, tmp_path / "joined")
    assert [r["value"] for r in pandas["segments"]["advertiser"]] == ["unknown", "unknown"]
    assert _comparable(spark_report) == _comparable(pandas)


def test_the_time_range_selects_the_same_records(spark: SparkSession, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    _messy_log(tmp_path)
    options = MonitorOptions(
        predictions=str(tmp_path / "predictions"),
        logs=str(tmp_path / "logs"),
        start=datetime.fromtimestamp(1_700_000_000.5, UTC),
        end=datetime.fromtimestamp(1_700_000_001.2, UTC),
        min_segment=20,
    )
    pandas, spark_report = _both(options, tmp_path / "joined")
    assert pandas["inputs"]["prediction_records"] == 700
    assert _comparable(spark_report) == _comparable(pandas)


def test_a_gzip_prediction_file_is_read_as_firehose_writes_it(spark: SparkSession, tmp_path: Path) -> None:
    from aik.monitor.spark_job import read_records

    records = [Prediction(f"{i:032x}", 1_000 + i, None, "champion", "r", 0.25) for i in range(3)]
    uri = tmp_path / "p.gz"
    uri.write_bytes(gzip.compress("".join(r.to_line() for r in records).encode()))
    rows = read_records(spark, [str(uri)], None, None).select("bid_id", "ts_ms", "likelihood").collect()
    assert [tuple(r) for r in rows] == [(r.bid_id, r.ts_ms, 0.25) for r in records]


def test_the_cli_judges_the_table_its_spark_engine_wrote(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    auctions, records, win, click = _experiment_data(600, seed=3)
    _logs(str(tmp_path / "logs"), auctions, list(win), list(click))
    workspace = str(tmp_path / "workspace")
    _write_predictions(str(tmp_path / "workspace" / "predictions"), records)
    assert main(["--workspace", workspace, "configure"]) == 0
    args = ["--workspace", workspace, "monitor", "--logs", str(tmp_path / "logs"), "--json"]
    capsys.readouterr()
    assert main([*args, "--engine", "spark", "--out", str(tmp_path / "spark")]) == 0
    by_spark = json.loads(capsys.readouterr().out)
    assert (tmp_path / "spark" / "joined" / COUNTS_FILE).exists()
    joined = str(tmp_path / "spark" / "joined")
    assert main([*args, "--joined", joined, "--out", str(tmp_path / "again")]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["inputs"]["joined"] == joined and by_spark["inputs"]["requests"] == 600
    assert _comparable(again) == _comparable(by_spark)


def test_a_directory_that_is_no_joined_table_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--workspace", str(tmp_path), "configure"]) == 0
    capsys.readouterr()
    assert main(["--workspace", str(tmp_path), "monitor", "--joined", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"aik monitor: {tmp_path} is not a joined table of the monitor's Spark job (no {COUNTS_FILE})"
    ]


def test_a_joined_table_with_an_experiment_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--workspace", str(tmp_path), "configure"]) == 0
    capsys.readouterr()
    assert (
        main(["--workspace", str(tmp_path), "monitor", "--joined", str(tmp_path), "--experiment", "x"]) == 1
    )
    assert "--joined judges the table as the job selected it" in capsys.readouterr().err


def test_the_engine_and_a_joined_table_are_one_choice(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["monitor", "--engine", "spark", "--joined", "/tmp/x"])
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def upload_table(local: Path, uri: str) -> None:
    """Every file of a table written locally, under an S3 prefix (what an EMR step writes there)."""
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        storage.upload(path, storage.join(uri, path.relative_to(local).as_posix()))


def test_the_report_reads_a_joined_table_in_s3_as_a_local_one(
    spark: SparkSession, tmp_path: Path, aws: None
) -> None:
    import boto3

    from aik.monitor.spark_job import JoinJob, run_join

    auctions, records, win, click = _experiment_data(1_000, seed=6)
    _logs(str(tmp_path / "logs"), auctions, list(win), list(click))
    _write_predictions(str(tmp_path / "predictions"), records)
    run_join(spark, JoinJob(str(tmp_path / "predictions"), str(tmp_path / "logs"), str(tmp_path / "joined")))
    boto3.client("s3").create_bucket(Bucket="aik-data")
    upload_table(tmp_path / "joined", "s3://aik-data/monitor/joined/")
    local = run_monitor(
        MonitorOptions(predictions="", logs="", joined=str(tmp_path / "joined"), min_segment=50)
    )
    s3 = run_monitor(
        MonitorOptions(
            predictions="",
            logs="",
            joined="s3://aik-data/monitor/joined/",
            out="s3://aik-data/monitor/",
            min_segment=50,
        )
    )
    assert s3.to_dict()["arms"] == local.to_dict()["arms"] and sum(m.n for m in s3.arms.values()) == 1_000
    assert storage.exists("s3://aik-data/monitor/monitor-report.json")
