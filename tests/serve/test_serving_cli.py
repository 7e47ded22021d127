"""`python -m filtering_server` and `python -m ad_server_emulator` as users run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from serving_fixtures import Artifacts, StatsdLines

from aik import dashboard, params
from filtering_server.process import ServerProcess


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a module in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("module", ["filtering_server", "ad_server_emulator"])
def test_help(module: str) -> None:
    out = run(module, "--help")
    assert out.returncode == 0
    assert f"usage: python -m {module}" in out.stdout
    assert "--workspace" in out.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("filtering_server", "--port", "abc"),
        ("filtering_server", "--backend", "cloud"),
        ("filtering_server", "--transport", "fibers"),
        ("ad_server_emulator", "localhost"),
        ("ad_server_emulator", "localhost", "0", "100"),
        ("ad_server_emulator", "localhost", "1", "-5"),
    ],
)
def test_bad_arguments_print_usage_and_exit_2(args: tuple[str, ...]) -> None:
    out = run(*args)
    assert out.returncode == 2
    assert out.stderr.startswith("usage: ")


def test_server_without_parameters_names_the_missing_one(workspace: Path) -> None:
    out = run("filtering_server", "--workspace", str(workspace), "--port", "0")
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "filtering_server: parameter /aik/xgboost/path is not set in the local parameter store"
    )


def test_server_with_a_missing_artifact_names_its_uri(own_artifacts: Artifacts) -> None:
    uri = own_artifacts.store.get(params.PIPELINE_MODEL)
    os.unlink(uri)
    out = run("filtering_server", "--workspace", str(own_artifacts.settings.workspace), "--port", "0")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == f"filtering_server: artifact not found: {uri}"


def test_emulator_without_a_server_fails_with_a_reason(workspace: Path) -> None:
    out = run(
        "ad_server_emulator", "127.0.0.1", "1", "10", "--port", "1", "--wait-ready", "1", "--no-metrics"
    )
    assert out.returncode == 1
    assert "was not ready within 1 s" in out.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("transport", ["threads", "loop"])
def test_server_and_emulator_end_to_end_then_sigterm_drains(
    own_artifacts: Artifacts, tmp_path: Path, statsd_receiver: StatsdLines, transport: str
) -> None:
    workspace = str(own_artifacts.settings.workspace)
    env = {"AIK_STATSD_HOST": "127.0.0.1", "AIK_STATSD_PORT": str(statsd_receiver.port)}
    count = f"{dashboard.SERVER_PREFIX}.{dashboard.FILTERING_COUNT}"
    server = ServerProcess(
        own_artifacts.settings,
        extra_args=["--metrics-interval", "0.2", "--transport", transport],
        env=env,
        log_path=tmp_path / "server.log",
    )
    try:
        options = ["--port", str(server.port), "--workspace", workspace, "--output", str(tmp_path / "out")]
        emulator = subprocess.run(
            [sys.executable, "-m", "ad_server_emulator", "127.0.0.1", "2", "600", *options, "--warmup", "0"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **env},
        )
        assert emulator.returncode == 0, emulator.stderr
        assert "emulator: 600 requests measured" in emulator.stdout
        report = json.loads((tmp_path / "out" / "emulator-report.json").read_text())
        assert report["errors"] == 0
        assert report["model_version"] == server.version
        assert statsd_receiver.wait_for(lambda _: sum(statsd_receiver.values(count, "c")) >= 600, timeout=10)
    finally:
        status = server.stop()
    output = server.log_path.read_text()
    assert status == 0, output
    assert f"(transport {transport})" in output
    assert "received SIGTERM" in output
    assert "stopped (600 requests served)" in output
    assert sum(statsd_receiver.values(count, "c")) == 600


def test_server_process_reports_a_startup_failure(workspace: Path) -> None:
    from aik.errors import AikError
    from aik.settings import Settings

    with pytest.raises(AikError, match="exited with status 1: filtering_server: parameter /aik/xgboost/path"):
        ServerProcess(Settings(workspace=workspace), log_path=workspace / "server.log")


@pytest.mark.parametrize("port", ["70000", "-1", "65536"])
def test_a_port_out_of_range_is_refused_at_argument_parsing(port: str) -> None:
    from filtering_server.__main__ import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--port", port])
    assert exit_.value.code == 2


def test_the_server_listens_on_loopback_unless_told_otherwise() -> None:
    from filtering_server.__main__ import build_parser, options_from_args

    assert options_from_args(build_parser().parse_args([])).server.host == "127.0.0.1"
    assert options_from_args(build_parser().parse_args(["--host", "0.0.0.0"])).server.host == "0.0.0.0"
