"""`aik ingest`: synthetic, --from DIR (real files of any season), the Kaggle download up to the network."""

from __future__ import annotations

import bz2
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aik import ingest
from aik.cli import main
from aik.context import Context
from aik.errors import AikError
from aik.features.job import run_features
from aik.ipinyou import CLK_SOURCE
from aik.params import BID_SOURCE, DOWNLOAD_URL, IMP_SOURCE, RAW_DATA
from aik.truth import truth_uri

from .test_ipinyou import bid_line, imp_line

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aik", *args], capture_output=True, text=True, timeout=300)


def _dataset(root: Path) -> Path:
    """A small tree shaped like the Kaggle download: seasons in subdirectories, mixed compression."""
    season = root / "ipinyou.contest.dataset" / "training2nd"
    season.mkdir(parents=True)
    (season / "bid.20130606.txt.bz2").write_bytes(bz2.compress((bid_line() + "\n" + "broken\n").encode()))
    (season / "imp.20130606.txt").write_text(imp_line() + "\r\n")
    (season / "clk.20130606.txt.bz2").write_bytes(bz2.compress((imp_line(LogType="2") + "\n").encode()))
    (root / "ipinyou.contest.dataset" / "city.en.txt").write_text("1\tBeijing\n")
    return root


def test_from_dir_copies_checks_and_points_the_sources(ctx: Context, tmp_path: Path) -> None:
    report = ingest.ingest_from(ctx, str(_dataset(tmp_path / "dl")))
    raw = Path(ctx.params.get(RAW_DATA))
    assert ctx.params.get(BID_SOURCE) == f"{raw}/bid/"
    assert ctx.params.get(IMP_SOURCE) == f"{raw}/imp/"
    assert ctx.params.get(CLK_SOURCE) == f"{raw}/clk/"
    assert sorted(p.name for kind in ("bid", "imp", "clk", "conv") for p in raw.glob(f"{kind}/*")) == [
        "bid.20130606.txt.bz2",
        "clk.20130606.txt.bz2",
        "imp.20130606.txt",
    ]
    assert report["totals"]["bid"] == {"files": 1, "lines": 2, "accepted": 1, "rejected": 1}
    assert report["totals"]["imp"]["rejected"] == 0
    assert (
        raw / "rejects" / "bid.20130606.txt.bz2.rejects.tsv"
    ).read_text() == "2\t1 fields (expected 21)\tbroken\n"
    assert [Path(s).name for s in report["skipped"]] == ["city.en.txt"]
    assert json.loads((raw / "ingest-report.json").read_text())["totals"] == report["totals"]


def test_real_files_are_not_appended_to_a_synthetic_world(ctx: Context, tmp_path: Path) -> None:
    ingest.ingest_synthetic(ctx, rows=500, seed=1, days=1)
    raw = Path(ctx.params.get(RAW_DATA))
    before = _raw_files(raw)
    with pytest.raises(AikError, match=r"is a synthetic world .* --replace"):
        ingest.ingest_from(ctx, str(_dataset(tmp_path / "dl")))
    assert _raw_files(raw) == before


def test_replacing_with_real_files_removes_a_stale_synthetic_truth(ctx: Context, tmp_path: Path) -> None:
    ingest.ingest_synthetic(ctx, rows=500, seed=1, days=1)
    raw = ctx.params.get(RAW_DATA)
    assert Path(truth_uri(raw)).is_file()
    ingest.ingest_from(ctx, str(_dataset(tmp_path / "dl")), replace=True)
    assert not Path(truth_uri(raw)).exists()
    assert not list(Path(raw).glob("bid/bid.2013060[7-9]*"))  # no synthetic day left behind


def test_from_dir_refuses_what_it_cannot_use(ctx: Context, tmp_path: Path) -> None:
    with pytest.raises(AikError, match="not a directory"):
        ingest.ingest_from(ctx, str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(AikError, match="no iPinYou log files"):
        ingest.ingest_from(ctx, str(tmp_path / "empty"))
    dup = _dataset(tmp_path / "dup") / "ipinyou.contest.dataset" / "training2nd"
    (dup / "imp.20130606.txt.bz2").write_bytes(bz2.compress(b"x\n"))
    with pytest.raises(AikError, match="same day"):
        ingest.ingest_from(ctx, str(tmp_path / "dup"))
    report = ingest.ingest_from(ctx, str(tmp_path / "dup"), match="[bc]*")  # --match picks the files
    assert set(report["totals"]) == {"bid", "clk"}
    with pytest.raises(AikError, match="inside /aik/raw_data"):
        ingest.ingest_from(ctx, ctx.params.get(RAW_DATA))


def test_no_validate_copies_without_a_rejects_report(ctx: Context, tmp_path: Path) -> None:
    report = ingest.ingest_from(ctx, str(_dataset(tmp_path / "dl")), validate=False)
    raw = Path(ctx.params.get(RAW_DATA))
    assert report["totals"]["bid"]["lines"] == 0 and not (raw / "rejects").exists()
    assert (raw / "bid" / "bid.20130606.txt.bz2").read_bytes() == (
        tmp_path / "dl" / "ipinyou.contest.dataset" / "training2nd" / "bid.20130606.txt.bz2"
    ).read_bytes()


def test_download_without_credentials_fails_before_the_network(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import opendatasets

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("must not reach the network")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(opendatasets, "download", never)
    with open(os.devnull) as no_terminal:  # stdin is not a terminal: opendatasets could not prompt
        monkeypatch.setattr(sys, "stdin", no_terminal)
        with pytest.raises(AikError, match=r"Kaggle credentials needed: put kaggle\.json"):
            ingest.download_kaggle(ctx)


def test_download_calls_opendatasets_then_ingests_what_it_fetched(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import opendatasets

    calls = []

    def fake_download(url: str, data_dir: str = ".", **kwargs: Any) -> None:
        calls.append((url, data_dir))
        _dataset(Path(data_dir) / "ipinyou")  # where opendatasets unpacks a Kaggle dataset

    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle.json").write_text('{"username": "u", "key": "k"}')
    monkeypatch.setattr(opendatasets, "download", fake_download)
    report = ingest.download_kaggle(ctx)
    assert calls == [(ctx.params.get(DOWNLOAD_URL), str(ctx.settings.workspace / "downloads"))]
    assert report["source"] == "kaggle" and report["totals"]["bid"]["accepted"] == 1

    def failing(url: str, data_dir: str = ".", **kwargs: Any) -> None:
        raise OSError("403 Forbidden")

    monkeypatch.setattr(opendatasets, "download", failing)
    with pytest.raises(AikError, match=r"download of .* failed: 403 Forbidden"):
        ingest.download_kaggle(ctx, url="https://www.kaggle.com/datasets/x/y")


def test_cli_usage_errors_exit_2_and_failures_exit_1_with_one_line(workspace: Path) -> None:
    out = run_cli("--workspace", str(workspace), "ingest")
    assert (
        out.returncode == 2 and "one of the arguments --synthetic --from --download is required" in out.stderr
    )
    out = run_cli("--workspace", str(workspace), "ingest", "--synthetic", "--rows", "0")
    assert out.returncode == 2 and "must be at least 1" in out.stderr
    out = run_cli("--workspace", str(workspace), "ingest", "--synthetic")
    assert out.returncode == 1 and "aik ingest: parameter /aik/raw_data is not set" in out.stderr
    assert main(["--workspace", str(workspace), "configure"]) == 0
    out = run_cli("--workspace", str(workspace), "ingest", "--from", str(workspace / "nowhere"))
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == f"aik ingest: not a directory: {workspace / 'nowhere'}"


def test_cli_synthetic_prints_the_summary_and_sources(workspace: Path) -> None:
    assert main(["--workspace", str(workspace), "configure"]) == 0
    out = run_cli("--workspace", str(workspace), "ingest", "--synthetic", "--rows", "2000", "--seed", "3")
    assert out.returncode == 0, out.stderr
    assert "ingest: 2,000 bid requests" in out.stdout
    assert "oracle AUC over all rows: win 0." in out.stdout
    assert f"/aik/bid_source={workspace}/bucket/raw/ipinyou-data/bid/" in out.stdout
    assert "synthetic logs: " in out.stderr  # progress lines


def test_real_sample_goes_through_ingest_and_the_ctr_job(
    spark: SparkSession, ctx: Context, ipinyou_season2: Path
) -> None:
    report = ingest.ingest_from(ctx, str(ipinyou_season2))
    assert report["totals"]["imp"] == {"files": 2, "lines": 12_000, "accepted": 12_000, "rejected": 0}
    assert report["totals"]["clk"] == {"files": 2, "lines": 2_447, "accepted": 2_447, "rejected": 0}
    with pytest.raises(AikError, match="use --use-case ctr"):
        run_features(ctx, "bid-filtering", spark=spark)
    # Independent count of the labels: impressions whose BidID appears in a click log.
    imps, clicks = set(), set()
    for path in ipinyou_season2.glob("imp.*.txt"):
        imps |= {line.split("\t", 1)[0] for line in path.read_text().splitlines()}
    for path in ipinyou_season2.glob("clk.*.txt"):
        clicks |= {line.split("\t", 1)[0] for line in path.read_text().splitlines()}
    result = run_features(ctx, "ctr", spark=spark)
    assert result.rows == len(imps)
    assert result.positives == len(imps & clicks) > 0
    assert result.labels["AdvertiserID"] >= 5


def test_on_the_aws_backend_ingest_writes_to_s3_and_ssm(aws: None, tmp_path: Path) -> None:
    import boto3

    from aik.params import DATA_BUCKET, configure
    from aik.settings import Settings

    boto3.client("s3").create_bucket(Bucket="aik-data")
    ctx = Context(Settings(backend="aws", workspace=tmp_path, region="us-east-1"))
    ctx.params.put(DATA_BUCKET, "aik-data")  # created by the aik/sagemaker-emr stack
    configure(ctx.params, ctx.settings)
    report = ingest.ingest_synthetic(ctx, rows=800, seed=2, days=2)
    assert ctx.params.get(BID_SOURCE) == "s3://aik-data/raw/ipinyou-data/bid/"
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="aik-data")["Contents"]}
    assert "raw/ipinyou-data/bid/bid.20130606.txt.bz2" in keys
    assert "raw/ipinyou-data/truth/truth.json" in keys and "raw/ipinyou-data/ingest-report.json" in keys
    assert report["rows"] == 800
    again = ingest.ingest_from(ctx, str(_dataset(tmp_path / "dl")), replace=True)  # the synthetic data goes
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="aik-data")["Contents"]}
    assert "raw/ipinyou-data/truth/truth.json" not in keys
    assert "raw/ipinyou-data/rejects/bid.20130606.txt.bz2.rejects.tsv" in keys
    assert again["totals"]["bid"]["rejected"] == 1


def _raw_files(raw: Path) -> dict[str, bytes]:
    """Every file under the raw-data area, relative path -> bytes."""
    return {str(p.relative_to(raw)): p.read_bytes() for p in sorted(raw.rglob("*")) if p.is_file()}


def test_a_truncated_archive_fails_ingest_and_leaves_the_previous_data(ctx: Context, tmp_path: Path) -> None:
    ingest.ingest_from(ctx, str(_dataset(tmp_path / "good")))
    raw = Path(ctx.params.get(RAW_DATA))
    before = _raw_files(raw)
    sources = ctx.params.get_all()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "imp.20130607.txt").write_text(imp_line() + "\n")
    whole = bz2.compress(("\n".join([bid_line()] * 2000) + "\n").encode())
    (bad / "bid.20130607.txt.bz2").write_bytes(whole[: len(whole) // 2])  # cut mid-stream
    with pytest.raises(AikError, match=r"bid\.20130607\.txt\.bz2"):
        ingest.ingest_from(ctx, str(bad))
    assert _raw_files(raw) == before  # nothing of the failed ingest, nothing of the previous lost
    assert ctx.params.get_all() == sources
    assert [p.name for p in raw.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_a_failed_synthetic_ingest_leaves_the_previous_data(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest.ingest_synthetic(ctx, rows=500, seed=1, days=1)
    raw = Path(ctx.params.get(RAW_DATA))
    before = _raw_files(raw)
    import aik.synthetic

    real = aik.synthetic.generate

    def disk_full(root: str, config: Any) -> Any:
        real(root, config)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(aik.synthetic, "generate", disk_full)
    with pytest.raises(OSError):
        ingest.ingest_synthetic(ctx, rows=700, seed=2, days=1)
    assert _raw_files(raw) == before


def test_a_replacing_ingest_replaces_the_previous_data_and_names_final_paths(
    ctx: Context, tmp_path: Path
) -> None:
    ingest.ingest_synthetic(ctx, rows=500, seed=1, days=1)
    report = ingest.ingest_from(ctx, str(_dataset(tmp_path / "dl")), replace=True)
    raw = Path(ctx.params.get(RAW_DATA))
    logs = sorted(p.parent.name for kind in ("bid", "imp", "clk", "conv") for p in raw.glob(f"{kind}/*"))
    assert logs == ["bid", "clk", "imp"]  # the synthetic logs of the previous ingest are gone
    assert not (raw / "truth").exists()
    assert all(f["copied_to"].startswith(f"{raw}/") and "/." not in f["copied_to"] for f in report["files"])
    assert json.loads((raw / "ingest-report.json").read_text()) == report


def test_log_files_with_extra_tags_in_their_names_are_recognised(ctx: Context, tmp_path: Path) -> None:
    src = tmp_path / "adv"
    src.mkdir()
    (src / "imp.20131021.adv2821.txt").write_text(imp_line() + "\n")
    (src / "imp.20131021.adv3358.txt.bz2").write_bytes(bz2.compress((imp_line() + "\n").encode()))
    (src / "bid.20131021.txt").write_text(bid_line() + "\n")
    report = ingest.ingest_from(ctx, str(src))
    assert report["totals"]["imp"] == {"files": 2, "lines": 2, "accepted": 2, "rejected": 0}
    raw = Path(ctx.params.get(RAW_DATA))
    assert sorted(p.name for p in (raw / "imp").iterdir()) == [
        "imp.20131021.adv2821.txt",
        "imp.20131021.adv3358.txt.bz2",
    ]


def test_a_failed_appending_ingest_adds_no_day_in_part(ctx: Context, tmp_path: Path) -> None:
    from aik.pipeline import ingest_new_files

    ingest.ingest_from(ctx, str(_dataset(tmp_path / "good")))
    raw = Path(ctx.params.get(RAW_DATA))
    before = _raw_files(raw)
    new = tmp_path / "new"
    new.mkdir()
    (new / "bid.20130607.txt").write_text(bid_line() + "\n")  # read first, fine
    whole = bz2.compress(("\n".join([imp_line()] * 2000) + "\n").encode())
    (new / "imp.20130607.txt.bz2").write_bytes(whole[: len(whole) // 2])  # the day's impressions, cut
    with pytest.raises(AikError, match=r"imp\.20130607\.txt\.bz2"):
        ingest_new_files(ctx, str(new))
    assert _raw_files(raw) == before  # not the bids of a day without its impressions (all labels 0)


def _day(root: Path, day: str) -> Path:
    """A directory with one day's bid and impression logs."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"bid.{day}.txt").write_text(bid_line() + "\n")
    (root / f"imp.{day}.txt").write_text(imp_line() + "\n")
    return root


def test_a_new_day_is_appended_beside_the_days_already_ingested(ctx: Context, tmp_path: Path) -> None:
    ingest.ingest_from(ctx, str(_day(tmp_path / "landing", "20130606")))
    raw = Path(ctx.params.get(RAW_DATA))
    first = _raw_files(raw)
    report = ingest.ingest_from(ctx, str(_day(tmp_path / "landing", "20130607")))  # day 6 still there
    assert sorted(p.name for p in (raw / "bid").iterdir()) == ["bid.20130606.txt", "bid.20130607.txt"]
    assert [Path(f["uri"]).name for f in report["files"]] == ["bid.20130607.txt", "imp.20130607.txt"]
    assert [Path(u).name for u in report["already_ingested"]] == ["bid.20130606.txt", "imp.20130606.txt"]
    assert all(_raw_files(raw)[name] == data for name, data in first.items() if "/" in name)


def test_reingesting_the_same_days_changes_nothing_and_says_so(workspace: Path, tmp_path: Path) -> None:
    landing = _day(tmp_path / "landing", "20130606")
    args = ["--workspace", str(workspace), "ingest", "--from", str(landing)]
    assert main(["--workspace", str(workspace), "configure"]) == 0
    assert main(args) == 0
    raw = workspace / "bucket" / "raw" / "ipinyou-data"
    before = _raw_files(raw)
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "nothing new: 2 file(s) already ingested (bid.20130606, imp.20130606)" in result.stdout
    assert _raw_files(raw) == before


def test_a_day_ingested_with_other_contents_is_refused_naming_it(ctx: Context, tmp_path: Path) -> None:
    ingest.ingest_from(ctx, str(_day(tmp_path / "landing", "20130606")))
    raw = Path(ctx.params.get(RAW_DATA))
    before = _raw_files(raw)
    other = tmp_path / "other"
    other.mkdir()
    (other / "bid.20130606.txt.bz2").write_bytes(bz2.compress((bid_line() + "\n").encode()))
    named = r"bid\.20130606\.txt\.bz2 is bid\.20130606, already ingested as .*--replace"
    with pytest.raises(AikError, match=named):
        ingest.ingest_from(ctx, str(other))
    assert _raw_files(raw) == before


def test_replace_replaces_the_days_already_ingested(ctx: Context, tmp_path: Path) -> None:
    ingest.ingest_from(ctx, str(_day(tmp_path / "a", "20130606")))
    ingest.ingest_from(ctx, str(_day(tmp_path / "b", "20130607")), replace=True)
    raw = Path(ctx.params.get(RAW_DATA))
    assert sorted(p.name for p in (raw / "bid").iterdir()) == ["bid.20130607.txt"]


def test_the_same_synthetic_world_again_is_already_ingested(ctx: Context) -> None:
    ingest.ingest_synthetic(ctx, rows=600, seed=3, days=2)
    raw = Path(ctx.params.get(RAW_DATA))
    before = _raw_files(raw)
    report = ingest.ingest_synthetic(ctx, rows=600, seed=3, days=2)
    assert report["files"] == [] and len(report["already_ingested"]) == 6  # bid, imp, clk of two days
    assert _raw_files(raw) == before


def test_another_synthetic_world_is_refused_without_replace(ctx: Context) -> None:
    ingest.ingest_synthetic(ctx, rows=600, seed=3, days=2)
    raw = Path(ctx.params.get(RAW_DATA))
    before = _raw_files(raw)
    with pytest.raises(AikError, match="--replace"):
        ingest.ingest_synthetic(ctx, rows=600, seed=4, days=2)
    assert _raw_files(raw) == before
    report = ingest.ingest_synthetic(ctx, rows=600, seed=4, days=2, replace=True)
    assert report["rows"] == 600 and _raw_files(raw) != before
