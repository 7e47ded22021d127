"""The demo's serve step: the filtering server under the emulator's load, a hot swap, the dashboard.

A StatsD receiver stands in for the CloudWatch agent; the server starts on the first model's release;
the emulator replays requests while a canary checks every answer; once a share of the load has been
served the second model is published through the library (`train_and_publish` of its file), and the
step waits until the server answers with it; the dashboard is rendered from the received metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Self

from aik import params, releases, storage
from aik.context import Context
from aik.errors import AikError
from demo.canary import Canary, CanaryReport
from demo.state import Record
from demo.steps import Trained

log = logging.getLogger("demo")

#: Seconds the server may take to load the published model before the step fails.
SWAP_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class SwapTiming(Record):
    """When the second model was published and how long the server took to serve it."""

    published_after_requests: int
    publish_seconds: float
    picked_up_seconds: float
    served_at_swap: int
    emulator_running: bool


@dataclass(frozen=True)
class Swap:
    """The hot swap: the two model versions, its timing, and what the canary saw across it."""

    from_version: str
    to_version: str
    timing: SwapTiming
    canary: CanaryReport

    def to_dict(self) -> dict[str, Any]:
        """summary.json's `swap`: versions under `from` and `to`, the timing's fields, `canary`."""
        return {
            "from": self.from_version,
            "to": self.to_version,
            **self.timing.to_dict(),
            "canary": self.canary.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Read back what `to_dict` wrote."""
        timing = {f.name: data[f.name] for f in fields(SwapTiming)}
        return cls(data["from"], data["to"], SwapTiming(**timing), CanaryReport.from_dict(data["canary"]))


@dataclass(frozen=True)
class Served:
    """What the serve step measured and where its artifacts are."""

    requests_measured: int
    errors: int
    throughput_rps: float
    latency_ms: dict[str, float]
    likelihood_mean: float
    requests_served: int
    swap: Swap
    server_exit_code: int
    #: The StatsD receiver's counters (datagrams, lines, malformed, records, kernel drops).
    receiver: dict[str, Any]
    #: The dashboard's figures (`DashboardSummary.to_dict`) and its text lines.
    dashboard: dict[str, Any]
    dashboard_lines: list[str]
    emulator_report: str
    emulator_png: str
    server_log: str
    metrics_file: str
    dashboard_png: str
    dashboard_html: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {**asdict(self), "swap": self.swap.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Read back what `to_dict` wrote."""
        return cls(**{**data, "swap": Swap.from_dict(data["swap"])})


def _model_version(uri: str) -> str:
    from filtering_server.model import model_version  # the server's version string of a booster

    return model_version(storage.read_bytes(uri))


def _health(port: int) -> Any:
    from filtering_api.client import connect

    client = connect("127.0.0.1", port, 5_000)
    try:
        return client.health()
    finally:
        client.close()


def versions_to_swap(ctx: Context, first: Trained, second: Trained) -> tuple[str, str]:
    """The two models' versions; the first release made live again when an earlier run swapped it."""
    first_version, second_version = _model_version(first.candidate_uri), _model_version(second.candidate_uri)
    if first_version == second_version:
        raise AikError("the swap model is identical to the first one; choose another --swap-seed")
    if releases.live_uri(ctx.params) != first.release:
        log.info("making the first release live again (an earlier run swapped it)")
        releases.promote(ctx.params, releases.read_release(first.release))
    return first_version, second_version


class Load:
    """The emulator's replay in a thread; its report, or the exception it raised, once joined."""

    def __init__(self, ctx: Context, port: int, statsd_port: int, requests: int, connections: int, out: Path):
        from ad_server_emulator.emulator import EmulatorConfig

        self.ctx = ctx
        self.config = EmulatorConfig(
            host="127.0.0.1",
            port=port,
            threads=connections,
            requests=requests,
            output_dir=out,
            statsd_host="127.0.0.1",
            statsd_port=statsd_port,
        )
        self.report: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="emulator", daemon=True)

    def _run(self) -> None:
        from ad_server_emulator.emulator import run_emulator

        try:
            self.report = run_emulator(self.config, store=self.ctx.params)
        except BaseException as exc:  # reported by the main thread in finish()
            self.error = exc

    def start(self) -> Load:
        """Start replaying."""
        self.thread.start()
        return self

    def finish(self) -> dict[str, Any]:
        """Wait for the end of the replay; its report, or an error naming what failed."""
        self.thread.join()
        if self.error is not None or self.report is None:
            raise AikError(f"the emulator failed: {self.error}")
        return self.report


def swap_under_load(
    ctx: Context, port: int, load: Load, second: Trained, versions: tuple[str, str], swap_after: int
) -> SwapTiming:
    """Publish the second model once `swap_after` requests were served; wait until the server serves it."""
    from aik.train.workflow import TrainOptions, train_and_publish

    while load.thread.is_alive() and _health(port).requestsServed < swap_after:
        time.sleep(0.2)
    published_after = _health(port).requestsServed
    t0 = time.monotonic()
    train_and_publish(ctx, TrainOptions(model_uri=second.candidate_uri, baselines=False))
    publish_seconds = round(time.monotonic() - t0, 3)
    t1 = time.monotonic()
    while (status := _health(port)).modelVersion != versions[1]:
        if time.monotonic() - t1 > SWAP_TIMEOUT_S:
            raise AikError(f"the server did not pick up model {versions[1]} within {SWAP_TIMEOUT_S:.0f} s")
        time.sleep(0.1)
    picked_up = round(time.monotonic() - t1, 3)
    log.info(
        "hot swap: %s -> %s serving %.1f s after publishing, %d requests served so far",
        *versions,
        picked_up,
        status.requestsServed,
    )
    return SwapTiming(
        published_after_requests=published_after,
        publish_seconds=publish_seconds,
        picked_up_seconds=picked_up,
        served_at_swap=status.requestsServed,
        emulator_running=load.thread.is_alive(),
    )


def check_canary(canary: CanaryReport, versions: tuple[str, str]) -> None:
    """No request failed across the swap and the versions went old -> new, never back."""
    if canary.errors:
        raise AikError(f"requests failed during the swap: {canary.error_messages}")
    if canary.versions != list(versions):
        raise AikError(f"the canary saw model versions {canary.versions}")


def serve(
    ctx: Context,
    directory: Path,
    first: Trained,
    second: Trained,
    *,
    requests: int,
    connections: int,
    swap_at: float,
) -> Served:
    """Serve the first model under load, swap in the second, render the dashboard."""
    from ad_server_emulator.emulator import load_rows
    from aik.monitoring import StatsdReceiver
    from aik.monitoring.render import render_dashboard
    from filtering_server.process import ServerProcess

    versions = versions_to_swap(ctx, first, second)
    monitoring = directory / "monitoring"
    monitoring.mkdir(exist_ok=True)
    metrics_path = monitoring / "metrics.jsonl"
    metrics_path.unlink(missing_ok=True)
    emulator_dir = directory / "emulator"
    server_log = directory / "server.log"
    with StatsdReceiver(str(metrics_path), port=0) as receiver:
        server = ServerProcess(
            ctx.settings,
            log_path=server_log,
            extra_args=[
                *("--statsd-host", "127.0.0.1", "--statsd-port", str(receiver.port)),
                *("--watch-interval", "1", "--log-interval", "5"),
            ],
        )
        try:
            if server.version != versions[0]:
                raise AikError(f"the server loaded model {server.version}, expected {versions[0]}")
            log.info("filtering server ready on port %d with model %s", server.port, versions[0])
            canary = Canary(server.port, load_rows(ctx.params.get(params.INFERENCE_DATA), 2_000)).start()
            load = Load(ctx, server.port, receiver.port, requests, connections, emulator_dir).start()
            timing = swap_under_load(ctx, server.port, load, second, versions, int(requests * swap_at))
            load.thread.join()
            time.sleep(1.0)  # a last second of canary traffic on the new model
            seen = canary.stop()
            check_canary(seen, versions)
            report = load.finish()
            served = _health(server.port).requestsServed
        finally:
            exit_code = server.stop()
    if exit_code != 0:
        raise AikError(f"the filtering server exited with {exit_code} on SIGTERM; see {server_log}")
    dashboard = render_dashboard(str(metrics_path), str(monitoring))
    return Served(
        requests_measured=report["requests_measured"],
        errors=report["errors"],
        throughput_rps=report["throughput_rps"],
        latency_ms=report["latency_ms"],
        likelihood_mean=report["likelihood"]["mean"],
        requests_served=served,
        swap=Swap(versions[0], versions[1], timing, seen),
        server_exit_code=exit_code,
        receiver=asdict(receiver.stats),
        dashboard=dashboard.summary.to_dict(),
        dashboard_lines=dashboard.summary.lines(),
        emulator_report=str(emulator_dir / "emulator-report.json"),
        emulator_png=str(emulator_dir / "emulator-report.png"),
        server_log=str(server_log),
        metrics_file=str(metrics_path),
        dashboard_png=str(dashboard.png),
        dashboard_html=str(dashboard.html),
    )
