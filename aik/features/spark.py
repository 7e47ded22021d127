"""The SparkSession the feature job runs in: EMR's (spark-submit, Livy), or a quiet local one here."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from aik.errors import AikError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

#: Extra Maven packages for a local session, e.g. `ml.combust.mleap:mleap-spark_2.13:0.25.3` to write
#: the bundle with mleap-spark itself (needs access to Maven Central).
ENV_PACKAGES = "AIK_SPARK_PACKAGES"
ENV_DRIVER_MEMORY = "AIK_SPARK_DRIVER_MEMORY"

# Spark's own log lines (startup banners, per-stage warnings) drown the job's progress lines; errors
# still come through. Written to a temporary file because the driver JVM reads it at launch.
_LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
# Same level as the root: Spark then skips its "Setting default log level" banner (it keys the
# banner on the logger of the class that starts the JVM, the Python gateway here).
logger.repl.name = org.apache.spark.api.python.PythonGatewayServer
logger.repl.level = error
"""


def _log4j_file() -> Path:
    path = Path(tempfile.gettempdir()) / "aik-spark-log4j2.properties"
    if not path.exists() or path.read_text() != _LOG4J2:
        path.write_text(_LOG4J2)
    return path


def inside_spark_submit() -> bool:
    """True when this Python process was started by spark-submit (an EMR step) rather than by a user."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def local_session(
    app_name: str = "aik",
    *,
    cores: int | None = None,
    shuffle_partitions: int | None = None,
    driver_memory: str | None = None,
) -> SparkSession:
    """A local-mode SparkSession sized for one machine, with Spark's logging turned down to errors."""
    from pyspark.sql import SparkSession

    # Workers must run this interpreter (the one with aik, woothee and pyarrow), not whatever
    # `python3` is first on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    cpus = os.cpu_count() or 2
    builder = (
        SparkSession.builder.master(f"local[{cores or '*'}]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Small data, few cores: a handful of shuffle partitions instead of 200 near-empty ones.
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions or 2 * cpus))
        .config("spark.driver.memory", driver_memory or os.environ.get(ENV_DRIVER_MEMORY, "4g"))
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{_log4j_file()}")
    )
    packages = os.environ.get(ENV_PACKAGES)
    if packages:
        builder = builder.config("spark.jars.packages", packages)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # no Java, a port in use, ...: say so in one line
        raise AikError(
            f"cannot start Spark in local mode ({exc}); it needs Java 17 on PATH or JAVA_HOME"
        ) from exc
    spark.sparkContext.setLogLevel("ERROR")
    # No `.part-*.crc` files beside the outputs: readers of the local artifacts (the emulator, pandas)
    # should only ever see the data. The local filesystem instance is cached, so writers share it.
    jvm = spark.sparkContext._jvm
    assert jvm is not None  # a started session always has its JVM view
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    jvm.org.apache.hadoop.fs.FileSystem.getLocal(hadoop_conf).setWriteChecksum(False)
    return spark


def get_session(app_name: str = "aik-features") -> SparkSession:
    """The active session (notebook on EMR, spark-submit), else a local one."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if inside_spark_submit():
        return SparkSession.builder.appName(app_name).getOrCreate()
    return local_session(app_name)


class StageProgress:
    """Log the running Spark stages' task counts every few seconds while a block of work runs."""

    def __init__(self, spark: SparkSession, label: str, every_s: float = 5.0) -> None:
        self._tracker = spark.sparkContext.statusTracker()
        self._label = label
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aik-spark-progress", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                for stage_id in sorted(self._tracker.getActiveStageIds()):
                    info = self._tracker.getStageInfo(stage_id)
                    if info is not None:
                        log.info(
                            "%s: stage %d: %d/%d tasks done (%d running)",
                            self._label,
                            stage_id,
                            info.numCompletedTasks,
                            info.numTasks,
                            info.numActiveTasks,
                        )
            except Exception:  # the session is stopping; progress is best effort
                return

    def __enter__(self) -> StageProgress:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self._every_s + 1)
