"""The feature job on a real Spark cluster: a standalone master and worker on this machine, the job
submitted with `spark-submit --master spark://...` as docs/pipeline.md tells cluster users, and its
outputs equal to the local-mode run's on the same logs.

The master and worker are the pyspark distribution's own (`spark-class ...deploy.master.Master` and
`...deploy.worker.Worker`), bound to 127.0.0.1 on ephemeral ports, and always torn down. The job runs
in separate executor JVMs with their own Python workers, ships the kit to them as `--py-files aik.zip`,
and its tasks cross process boundaries (shuffles, broadcasts), which local mode never exercises.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from aik.features.job import run_features
from aik.ingest import ingest_synthetic

from .conftest import make_context
from .test_job_outputs_unchanged import digests

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# two runs of the job plus three JVMs to start: on a loaded shared machine this takes many minutes
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "aik" / "features" / "job.py"
START_TIMEOUT_S = 120
JOB_TIMEOUT_S = 900


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


@dataclass
class Daemon:
    """One JVM of the cluster, its log file, and how to stop it (its own process group)."""

    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text())
            if match:
                return match
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"no {pattern!r} in {self.log}:\n{self.text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the worker's executors are in its group
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "SPARK_HOME": str(_spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }


def _start(log: Path, *args: str) -> Daemon:
    spark_class = _spark_home() / "bin" / "spark-class"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(spark_class), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(),
            start_new_session=True,
        )
    return Daemon(process, log)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Spark standalone master and one worker (2 cores, 2 GB) on 127.0.0.1; yields the master URL."""
    tmp = tmp_path_factory.mktemp("standalone")
    daemons: list[Daemon] = []
    try:
        master = _start(
            tmp / "master.log",
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--webui-port",
            "0",
        )
        daemons.append(master)
        url = master.wait_for(r"Starting Spark master at (spark://127\.0\.0\.1:\d+)").group(1)
        worker = _start(
            tmp / "worker.log",
            "org.apache.spark.deploy.worker.Worker",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--webui-port",
            "0",
            "--cores",
            "2",
            "--memory",
            "2g",
            "--work-dir",
            str(tmp / "work"),
            url,
        )
        daemons.append(worker)
        worker.wait_for(r"Successfully registered with master")
        yield url
    finally:
        for daemon in reversed(daemons):
            daemon.stop()


def _kit_zip(dest: Path) -> Path:
    """`zip -r aik.zip aik -x '*/__pycache__/*'`, as docs/pipeline.md has cluster users build it."""
    path = dest / "aik.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted((ROOT / "aik").rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                zf.write(file, file.relative_to(ROOT))
    return path


def test_the_job_on_a_standalone_cluster_writes_what_local_mode_writes(
    spark: SparkSession, standalone: str, tmp_path: Path
) -> None:
    ctx = make_context(tmp_path / "ws")
    ingest_synthetic(ctx, rows=3_000, seed=13, days=3)
    run_features(ctx, "bid-filtering", spark=spark)
    local = digests(ctx)

    submit = shutil.which("spark-submit", path=str(_spark_home() / "bin"))
    assert submit is not None
    command = [
        submit,
        "--master",
        standalone,
        "--deploy-mode",
        "client",
        "--py-files",
        str(_kit_zip(tmp_path)),
        "--driver-memory",
        "1g",
        "--executor-memory",
        "1g",
        "--conf",
        "spark.sql.shuffle.partitions=4",
        str(JOB),
        "--backend",
        "local",
        "--workspace",
        str(ctx.settings.workspace),
        "--use-case",
        "bid-filtering",
    ]
    done = subprocess.run(
        command, env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=JOB_TIMEOUT_S, check=False
    )
    assert done.returncode == 0, done.stderr[-5000:]
    assert '"use_case": "bid-filtering"' in done.stdout  # the job's report, printed at its end
    assert digests(ctx) == local
