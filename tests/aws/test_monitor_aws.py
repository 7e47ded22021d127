"""`aik --backend aws monitor` in its own process against moto's S3 and SSM: every default root in S3."""

from __future__ import annotations

import json

import pytest
from monitor.test_monitor_join import _experiment_data, _logs, _write_predictions

from aik import storage

from .conftest import ROOT, MotoEndpoint, ssm_parameters


def test_the_report_reads_and_writes_the_data_bucket(
    moto_endpoint: MotoEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_endpoint.run(["aik", "--backend", "aws", "configure"])
    raw_data = ssm_parameters(moto_endpoint)["/aik/raw_data"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint.url)  # this process writes the inputs there too
    auctions, records, win, click = _experiment_data(800, seed=4)
    _logs(storage.join(raw_data, "served"), auctions, list(win), list(click))
    _write_predictions(storage.join(ROOT, "predictions"), records)  # where the Firehose stream delivers
    done = moto_endpoint.run(["aik", "--backend", "aws", "monitor", "--min-segment", "50"])
    assert "verdict: challenger vs champion" in done.stdout
    doc = json.loads(storage.read_text(storage.join(ROOT, "monitor", "monitor-report.json")))
    assert doc["inputs"]["requests"] == 800 and doc["experiment"] == "exp"
    assert doc["inputs"]["predictions"] == storage.join(ROOT, "predictions") + "/"
    assert storage.exists(storage.join(ROOT, "monitor", "calibration.png"))
