"""`python -m aik.monitoring`: the receiver as its own process, render and summary, bad arguments."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import statsd

from aik.dashboard import (
    CLIENT_PREFIX,
    FILTERING_COUNT,
    FILTERING_LATENCY,
    LIKELIHOOD,
    SERVER_PREFIX,
    WIDGETS,
)
from aik.monitoring.__main__ import main
from aik.monitoring.windows import WindowRecord


def start_receiver(out: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    """Start `receive --port 0` and read the bound port from its first line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aik.monitoring", "receive", "--port", "0", "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.fullmatch(r"listening on udp 127\.0\.0\.1:(\d+)\n", line)
    assert match, (line, proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
    return proc, int(match.group(1))


def test_receive_runs_as_a_process_until_sigterm_and_flushes(tmp_path: Path) -> None:
    out = tmp_path / "metrics.jsonl"
    proc, port = start_receiver(out)
    try:
        server = statsd.StatsClient("127.0.0.1", port, prefix=SERVER_PREFIX)
        client = statsd.StatsClient("127.0.0.1", port, prefix=CLIENT_PREFIX)
        for i in range(100):
            server.incr(FILTERING_COUNT)
            server.timing(FILTERING_LATENCY, 0.5 + i / 100)
            client.gauge(LIKELIHOOD, 0.25)
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "received 300 datagrams, 300 lines (0 malformed)" in stdout
    records = [WindowRecord.from_dict(json.loads(line)) for line in out.read_text().splitlines()]
    assert sum(r.sum for r in records if r.name == "filtering_server_filtering_count") == 100
    assert {r.name for r in records} == {
        "filtering_server_filtering_count",
        "filtering_server_filtering_latency",
        "adserver_client_likelihood_to_bid",
    }


def test_receive_stops_after_its_duration(tmp_path: Path) -> None:
    proc, _ = start_receiver(tmp_path / "m.jsonl", "--duration", "0.3")
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "received 0 datagrams" in stdout


def test_render_writes_the_dashboard_and_prints_the_figures(
    records: list[WindowRecord], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(r.to_json() + "\n" for r in records))
    assert main(["render", str(metrics), "--out", str(tmp_path / "dash")]) == 0
    out = capsys.readouterr().out
    assert "total bid requests: 400" in out
    assert (tmp_path / "dash" / "dashboard.png").stat().st_size > 0
    page = (tmp_path / "dash" / "dashboard.html").read_text()
    assert all(w.title in page for w in WIDGETS)


def test_summary_as_json(
    records: list[WindowRecord], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(r.to_json() + "\n" for r in records))
    assert main(["summary", str(metrics), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_requests"] == 400
    assert data["peak_rps"] == 25.0


def test_a_missing_metrics_file_is_a_one_line_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"python -m aik.monitoring render: artifact not found: {tmp_path / 'nope.jsonl'}"]


def test_a_port_in_use_is_a_one_line_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        assert main(["receive", "--port", str(port), "--out", str(tmp_path / "m.jsonl")]) == 1
    assert "cannot listen for StatsD on udp" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [[], ["receive"], ["receive", "--out", "x", "--port", "nope"], ["render"], ["bogus"]],
)
def test_bad_arguments_print_usage_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "usage: python -m aik.monitoring" in capsys.readouterr().err


def test_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "aik.monitoring", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    for command in ("receive", "render", "summary"):
        assert command in out.stdout
