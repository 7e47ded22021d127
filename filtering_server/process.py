"""Run the server in a background process and know when it is ready (for the demo, the benchmark, tests)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from aik.errors import AikError
from aik.settings import Settings


class ServerProcess:
    """`python -m filtering_server` in a child process: `.port` once ready, `.stop()` drains it (SIGTERM).

    Usable as a context manager. The server's log goes to `log_path` (a temporary file by default).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        extra_args: list[str] | None = None,
        log_path: Path | None = None,
        ready_timeout: float = 300.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="aik-server-"))
        self.ready_file = self._dir / "ready.json"
        self.log_path = log_path or self._dir / "server.log"
        self._log: IO[str] = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 (closed in stop)
        args = [sys.executable, "-m", "filtering_server", "--backend", settings.backend]
        args += ["--workspace", str(settings.workspace), "--host", host, "--port", str(port)]
        args += ["--ready-file", str(self.ready_file)]
        if settings.region:
            args += ["--region", settings.region]
        self.proc = subprocess.Popen(
            args + (extra_args or []),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + ready_timeout
        while not self.ready_file.exists():
            if self.proc.poll() is not None:
                self._log.close()
                self._remove_temporary()
                raise AikError(
                    f"the filtering server exited with status {self.proc.returncode}: {self._last_line()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise AikError(
                    f"the filtering server was not ready within {ready_timeout:.0f} s (log: {self.log_path})"
                )
            time.sleep(0.1)
        ready = json.loads(self.ready_file.read_text(encoding="utf-8"))
        self.port: int = int(ready["port"])
        self.version: str = str(ready["version"])

    def _last_line(self) -> str:
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return lines[-1] if lines else "no output"

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (drain) and wait; kill if it does not exit in time. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        self._remove_temporary()
        return int(self.proc.returncode)

    def _remove_temporary(self) -> None:
        """Remove the ready file, and the temporary directory unless the log is in it."""
        self.ready_file.unlink(missing_ok=True)
        if self.log_path.parent != self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
