"""`aik demo`: the whole kit end to end on one machine, step by step, with a summary that names its sources.

Steps: configure, ingest (synthetic logs with a known truth), features (Spark, local mode), train (gates,
plots), retrain (a second model with another seed, kept as a candidate), serve (StatsD receiver standing
in for the CloudWatch agent, the filtering server, the emulator's load, a hot swap to the second model
during the load, the dashboard rendered), synth (the CDK app). A step whose inputs have not changed since
its last successful run is reused (`make demo-clean` starts over); serve always runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aik import params, releases, storage
from aik.context import Context
from aik.errors import AikError

log = logging.getLogger("demo")

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_FILE = "state.json"
SUMMARY_JSON = "summary.json"
SUMMARY_TXT = "summary.txt"
#: What the features step must still find on disk to be reused.
FEATURE_OUTPUTS = ("train", "valid", "test", "bundle", "schema", "inference", "report")


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs: data size and seed, load size, the swap model's seed, and whether to synth."""

    rows: int = 200_000
    requests: int = 100_000
    seed: int = 7
    connections: int = 2
    #: xgboost seed of the model swapped in during the load (the first model uses seed 0).
    swap_seed: int = 1
    #: Share of the requests served before the new model is published (early: loading takes seconds).
    swap_at: float = 0.05
    synth: bool = True
    fresh: bool = False


class StepFailed(AikError):
    """A demo step failed: the message names the step and the reason."""

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        super().__init__(f"step '{step}' failed: {reason}")


@dataclass
class StepRecord:
    """One step's outcome as kept in the state file."""

    key: str
    seconds: float
    result: dict[str, Any]
    reused: bool = False


@dataclass
class DemoRun:
    """The demo's workspace directory, its state, and the records of this run's steps."""

    ctx: Context
    config: DemoConfig
    directory: Path
    state: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, StepRecord] = field(default_factory=dict)

    @classmethod
    def open(cls, ctx: Context, config: DemoConfig) -> DemoRun:
        """Load the state of earlier runs (none when `fresh`)."""
        directory = ctx.settings.workspace / "demo"
        directory.mkdir(parents=True, exist_ok=True)
        state_path = directory / STATE_FILE
        state: dict[str, Any] = {}
        if state_path.exists() and not config.fresh:
            try:
                state = json.loads(state_path.read_text())
            except json.JSONDecodeError:
                log.warning("ignoring an unreadable %s; every step runs again", state_path)
        return cls(ctx, config, directory, state)

    def save(self) -> None:
        """Persist the records of the steps that succeeded."""
        self.state.update({name: asdict(rec) for name, rec in self.steps.items()})
        storage.write_text(str(self.directory / STATE_FILE), json.dumps(self.state, indent=2) + "\n")

    def step(
        self,
        name: str,
        key: str | None,
        run: Callable[[], dict[str, Any]],
        still_valid: Callable[[dict[str, Any]], bool] = lambda _: True,
    ) -> dict[str, Any]:
        """Run a step (or reuse its last result when its key matches and its outputs still exist)."""
        previous = self.state.get(name)
        if key is not None and previous and previous.get("key") == key and still_valid(previous["result"]):
            log.info("step %s: reusing the result of an earlier run (same inputs)", name)
            self.steps[name] = StepRecord(key, previous["seconds"], previous["result"], reused=True)
            return previous["result"]
        log.info("step %s: starting", name)
        start = time.monotonic()
        try:
            result = run()
        except StepFailed:
            raise
        except AikError as exc:
            raise StepFailed(name, str(exc)) from exc
        except Exception as exc:
            log.exception("step %s crashed", name)
            raise StepFailed(name, f"{type(exc).__name__}: {exc}") from exc
        seconds = time.monotonic() - start
        log.info("step %s: done in %.1f s", name, seconds)
        self.steps[name] = StepRecord(key or "", seconds, result)
        self.save()
        return result


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _exists(*uris: str) -> bool:
    return all(storage.exists(u) for u in uris)


# ------------------------------------------------------------------------------------------------
# The steps
# ------------------------------------------------------------------------------------------------


def _ingest(run: DemoRun) -> dict[str, Any]:
    from aik.ingest import ingest_synthetic

    report = ingest_synthetic(run.ctx, rows=run.config.rows, seed=run.config.seed)
    raw_data = run.ctx.params.get(params.RAW_DATA)
    return {"report": report, "report_uri": storage.join(raw_data, "ingest-report.json")}


def _features(run: DemoRun) -> dict[str, Any]:
    from aik.features import run_features

    return {"report": run_features(run.ctx, "bid-filtering")}


def _train(run: DemoRun, seed: int, publish: bool) -> dict[str, Any]:
    from aik.train.workflow import TrainOptions, train_and_publish

    # a model that fails a gate raises GateFailed (an AikError naming the gates): the step fails with it
    result = train_and_publish(run.ctx, TrainOptions(seed=seed, publish=publish, baselines=publish))
    return {
        "metrics": result.metrics.to_dict(),
        "model_uri": result.model_uri,
        "candidate_uri": result.candidate_uri,
        "candidate_reports": result.candidate_reports,
        "published": result.published,
        "release": result.release.manifest_uri,
    }


def _model_version(data: bytes) -> str:
    # the server's version string: a short sha256 of the booster bytes (filtering_server.model)
    from filtering_server.model import model_version

    return model_version(data)


class _Canary:
    """A paced client that keeps requests flowing across the model swap and checks every answer.

    The emulator measures throughput as fast as it can and may finish before a new model has loaded; the
    canary runs from the server's start until told to stop, so the swap always happens under load. It
    uses `filterBatch`, whose answer names the model version, to check that no request fails, every
    likelihood is a probability, and versions only ever move forward (old, then new, never back).
    """

    def __init__(self, port: int, rows: list[dict[str, Any]], batch: int = 4, pause_s: float = 0.002) -> None:
        from ad_server_emulator.emulator import bid_request

        self.port = port
        self.batches = [
            [bid_request(r) for r in rows[i : i + batch]] for i in range(0, len(rows) - batch + 1, batch)
        ]
        self.pause_s = pause_s
        self.requests = 0
        self.errors: list[str] = []
        self.versions: list[str] = []  # each version in the order first seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="canary", daemon=True)

    def start(self) -> _Canary:
        """Start sending."""
        self._thread.start()
        return self

    def _run(self) -> None:
        from ad_server_emulator.emulator import connect

        client = connect("127.0.0.1", self.port)
        try:
            i = 0
            while not self._stop.is_set():
                batch = self.batches[i % len(self.batches)]
                i += 1
                try:
                    answer = client.filterBatch(batch)
                except Exception as exc:  # counted: the point is that none happen
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    client.close()
                    client = connect("127.0.0.1", self.port)
                    continue
                self.requests += len(batch)
                if len(answer.likelihoodToBid) != len(batch) or not all(
                    0.0 <= p <= 1.0 for p in answer.likelihoodToBid
                ):
                    self.errors.append(f"bad answer from model {answer.modelVersion}")
                if not self.versions or self.versions[-1] != answer.modelVersion:
                    self.versions.append(answer.modelVersion)
                time.sleep(self.pause_s)
        finally:
            client.close()

    def stop(self) -> dict[str, Any]:
        """Stop and return what it saw."""
        self._stop.set()
        self._thread.join(30)
        return {
            "requests": self.requests,
            "errors": len(self.errors),
            "error_messages": self.errors[:5],
            "versions": self.versions,
        }


def _health(port: int) -> Any:
    from ad_server_emulator.emulator import connect

    client = connect("127.0.0.1", port, 5_000)
    try:
        return client.health()
    finally:
        client.close()


def _serve(run: DemoRun, first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    from ad_server_emulator.emulator import EmulatorConfig, load_rows, run_emulator
    from aik.monitoring import StatsdReceiver
    from aik.monitoring.render import render_dashboard
    from aik.train.workflow import TrainOptions, train_and_publish
    from filtering_server.process import ServerProcess

    cfg = run.config
    first_version = _model_version(storage.read_bytes(first["candidate_uri"]))
    second_version = _model_version(storage.read_bytes(second["candidate_uri"]))
    if first_version == second_version:
        raise AikError("the swap model is identical to the first one; choose another --swap-seed")
    if releases.live_uri(run.ctx.params) != first["release"]:
        log.info("making the first release live again (an earlier run swapped it)")
        releases.promote(run.ctx.params, releases.read_release(first["release"]))

    monitoring = run.directory / "monitoring"
    monitoring.mkdir(exist_ok=True)
    metrics_path = monitoring / "metrics.jsonl"
    metrics_path.unlink(missing_ok=True)
    emulator_dir = run.directory / "emulator"
    swap: dict[str, Any] = {"from": first_version, "to": second_version}

    server_log = run.directory / "server.log"
    with StatsdReceiver(str(metrics_path), port=0) as receiver:
        server = ServerProcess(
            run.ctx.settings,
            log_path=server_log,
            extra_args=[
                *("--statsd-host", "127.0.0.1", "--statsd-port", str(receiver.port)),
                *("--watch-interval", "1", "--log-interval", "5"),
            ],
        )
        try:
            if server.version != first_version:
                raise AikError(f"the server loaded model {server.version}, expected {first_version}")
            log.info("filtering server ready on port %d with model %s", server.port, first_version)
            canary = _Canary(server.port, load_rows(run.ctx.params.get(params.INFERENCE_DATA), 2_000)).start()
            outcome: dict[str, Any] = {}

            def load() -> None:
                try:
                    outcome["report"] = run_emulator(
                        EmulatorConfig(
                            host="127.0.0.1",
                            port=server.port,
                            threads=cfg.connections,
                            requests=cfg.requests,
                            output_dir=emulator_dir,
                            statsd_host="127.0.0.1",
                            statsd_port=receiver.port,
                        ),
                        store=run.ctx.params,
                    )
                except BaseException as exc:  # reported by the main thread
                    outcome["error"] = exc

            emulator = threading.Thread(target=load, name="emulator", daemon=True)
            emulator.start()
            # publish the second model once a share of the load has been served, then watch the swap
            target = int(cfg.requests * cfg.swap_at)
            while emulator.is_alive() and _health(server.port).requestsServed < target:
                time.sleep(0.2)
            swap["published_after_requests"] = _health(server.port).requestsServed
            t0 = time.monotonic()
            train_and_publish(run.ctx, TrainOptions(model_uri=second["candidate_uri"], baselines=False))
            swap["publish_seconds"] = round(time.monotonic() - t0, 3)
            t1 = time.monotonic()
            while (status := _health(server.port)).modelVersion != second_version:
                if time.monotonic() - t1 > 300:
                    raise AikError(f"the server did not pick up model {second_version} within 300 s")
                time.sleep(0.1)
            swap["picked_up_seconds"] = round(time.monotonic() - t1, 3)
            swap["served_at_swap"] = status.requestsServed
            swap["emulator_running"] = emulator.is_alive()
            log.info(
                "hot swap: %s -> %s serving %.1f s after publishing, %d requests served so far",
                first_version,
                second_version,
                swap["picked_up_seconds"],
                status.requestsServed,
            )
            emulator.join()
            time.sleep(1.0)  # a last second of canary traffic on the new model
            swap["canary"] = canary.stop()
            if swap["canary"]["errors"]:
                raise AikError(f"requests failed during the swap: {swap['canary']['error_messages']}")
            if swap["canary"]["versions"] != [first_version, second_version]:
                raise AikError(f"the canary saw model versions {swap['canary']['versions']}")
            if "error" in outcome:
                raise AikError(f"the emulator failed: {outcome['error']}")
            report = outcome["report"]
            served = _health(server.port).requestsServed
        finally:
            exit_code = server.stop()
    if exit_code != 0:
        raise AikError(f"the filtering server exited with {exit_code} on SIGTERM; see {server_log}")
    dashboard = render_dashboard(str(metrics_path), str(monitoring))
    return {
        "emulator": {k: report[k] for k in ("requests_measured", "errors", "throughput_rps", "latency_ms")},
        "emulator_report": str(emulator_dir / "emulator-report.json"),
        "emulator_png": str(emulator_dir / "emulator-report.png"),
        "likelihood_mean": report["likelihood"]["mean"],
        "requests_served": served,
        "swap": swap,
        "server_log": str(server_log),
        "summary_json": str(run.directory / SUMMARY_JSON),
        "server_exit_code": exit_code,
        "receiver": asdict(receiver.stats),
        "metrics_file": str(metrics_path),
        "dashboard_png": str(dashboard.png),
        "dashboard_html": str(dashboard.html),
        "dashboard": dashboard.summary.to_dict(),
        "dashboard_lines": dashboard.summary.lines(),
    }


def _stacks_key() -> str:
    files = sorted([REPO_ROOT / "app.py", REPO_ROOT / "cdk.json", *(REPO_ROOT / "stacks").rglob("*.py")])
    return _key([(str(f.relative_to(REPO_ROOT)), hashlib.sha256(f.read_bytes()).hexdigest()) for f in files])


def _synth(run: DemoRun) -> dict[str, Any]:
    outdir = run.directory / "cdk.out"
    env = {**os.environ, "CDK_OUTDIR": str(outdir), "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}
    for var in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"):
        env.pop(var, None)  # offline and environment-agnostic, as `make synth`
    log_path = run.directory / "synth.log"
    with open(log_path, "w") as out:
        proc = subprocess.run(
            [sys.executable, str(REPO_ROOT / "app.py")],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if proc.returncode != 0:
        raise AikError(f"cdk synth exited with {proc.returncode}; see {log_path}")
    templates = sorted(str(p) for p in outdir.rglob("*.template.json"))
    return {"cdk_out": str(outdir), "templates": templates, "log": str(log_path)}


# ------------------------------------------------------------------------------------------------
# The run and its summary
# ------------------------------------------------------------------------------------------------


def run_demo(ctx: Context, config: DemoConfig) -> dict[str, Any]:
    """Run every step; raise `StepFailed` naming the first step that fails; return the summary."""
    started = time.monotonic()
    run = DemoRun.open(ctx, config)
    configured = run.step("configure", None, lambda: params.configure(ctx.params, ctx.settings))
    ingest_key = _key("ingest", config.rows, config.seed, configured[params.DATA_BUCKET])
    ingest = run.step("ingest", ingest_key, lambda: _ingest(run), lambda r: _exists(r["report_uri"]))
    features_key = _key("features", ingest_key)
    features = run.step(
        "features",
        features_key,
        lambda: _features(run),
        lambda r: _exists(*(r["report"]["outputs"][k] for k in FEATURE_OUTPUTS)),
    )
    first = run.step(
        "train",
        _key("train", features_key),
        lambda: _train(run, seed=0, publish=True),
        lambda r: "release" in r and _exists(r["release"], r["model_uri"], *r["candidate_reports"].values()),
    )
    second = run.step(
        "retrain",
        _key("retrain", features_key, config.swap_seed),
        lambda: _train(run, seed=config.swap_seed, publish=False),
        lambda r: "release" in r and _exists(r["release"]),
    )
    serve = run.step("serve", None, lambda: _serve(run, first, second))
    synth = (
        run.step("synth", _stacks_key(), lambda: _synth(run), lambda r: _exists(*r["templates"]))
        if config.synth and (REPO_ROOT / "app.py").exists()
        else None
    )
    summary = build_summary(run, ingest, features, first, serve, synth, time.monotonic() - started)
    storage.write_text(str(run.directory / SUMMARY_JSON), json.dumps(summary, indent=2, default=str) + "\n")
    storage.write_text(str(run.directory / SUMMARY_TXT), "\n".join(summary["lines"]) + "\n")
    return summary


def build_summary(
    run: DemoRun,
    ingest: dict[str, Any],
    features: dict[str, Any],
    train: dict[str, Any],
    serve: dict[str, Any],
    synth: dict[str, Any] | None,
    seconds: float,
) -> dict[str, Any]:
    """Every figure of the summary with the artifact it comes from."""
    fr = features["report"]
    m = train["metrics"]
    em = serve["emulator"]
    swap = serve["swap"]
    metrics_uri = train["candidate_reports"].get("metrics.json", "")
    reports = {k: v for k, v in train["candidate_reports"].items() if k.endswith(".png")}
    auc = m.get("auc")
    oracle_auc = m.get("oracle_auc")
    ratio = m.get("oracle_ratio") or (auc / oracle_auc if auc and oracle_auc else None)
    baselines = {name: b.get("auc") for name, b in (m.get("baselines") or {}).items()}
    lat = em["latency_ms"]
    quality = f"AUC {auc:.4f}" if auc is not None else "AUC n/a"
    if oracle_auc is not None and ratio is not None:
        quality += f", oracle AUC {oracle_auc:.4f}, ratio {ratio:.3f}"
    canary = swap["canary"]
    lines = [
        "",
        "AIK demo summary (every figure: the artifact it comes from in [brackets])",
        f"data       {run.config.rows:,} synthetic bid requests, seed {run.config.seed}: "
        f"{fr['rows']:,} rows, {100 * (fr.get('positive_rate') or 0):.1f} % won",
        f"           [{ingest['report_uri']}]",
        "           splits " + ", ".join(f"{k} {v['rows']:,}" for k, v in fr["splits"].items()),
        f"           [{fr['outputs'].get('report', '')}]",
        f"model      xgboost {quality}, log loss {m.get('logloss', float('nan')):.4f}",
        "           baselines "
        + ", ".join(f"{k} AUC {v:.4f}" for k, v in baselines.items() if v is not None),
        f"           [{metrics_uri}]",
        f"serving    {em['requests_measured']:,} requests over {run.config.connections} connections: "
        f"{em['throughput_rps']:,.0f} requests/s, p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms, "
        f"{em['errors']} errors",
        f"           [{serve['emulator_report']}]",
        f"hot swap   {swap['from']} -> {swap['to']} published after {swap['published_after_requests']:,} "
        f"requests, serving {swap['picked_up_seconds']:.1f} s later",
        f"           canary across the swap: {canary['requests']:,} requests, {canary['errors']} failed, "
        f"model versions seen {' -> '.join(canary['versions'])}",
        f"           [{serve['server_log']}, {serve['summary_json']}]",
        "dashboard  " + "; ".join(line.strip() for line in serve["dashboard_lines"][1:]),
        f"           [{serve['metrics_file']}]",
        f"           {serve['dashboard_png']}",
        f"           {serve['dashboard_html']}",
        "plots      " + "\n           ".join([*reports.values(), serve["emulator_png"]]),
    ]
    if synth:
        lines.append(
            f"cdk        {len(synth['templates'])} templates synthesized offline [{synth['cdk_out']}]"
        )
    timings = ", ".join(
        f"{name} {rec.seconds:.0f} s" + (" (reused)" if rec.reused else "") for name, rec in run.steps.items()
    )
    lines.append(f"steps      {timings}; total {seconds:.0f} s")
    return {
        "rows": fr["rows"],
        "auc": auc,
        "oracle_auc": oracle_auc,
        "oracle_ratio": ratio,
        "baselines": baselines,
        "throughput_rps": em["throughput_rps"],
        "latency_ms": em["latency_ms"],
        "errors": em["errors"],
        "swap": swap,
        "dashboard": serve["dashboard"],
        "artifacts": {
            "ingest_report": ingest["report_uri"],
            "features_report": fr["outputs"].get("report"),
            "metrics": metrics_uri,
            "plots": reports,
            "emulator_report": serve["emulator_report"],
            "emulator_png": serve["emulator_png"],
            "server_log": serve["server_log"],
            "metrics_file": serve["metrics_file"],
            "dashboard_png": serve["dashboard_png"],
            "dashboard_html": serve["dashboard_html"],
            "cdk_out": synth["cdk_out"] if synth else None,
        },
        "steps": {
            name: {"seconds": round(rec.seconds, 1), "reused": rec.reused} for name, rec in run.steps.items()
        },
        "seconds": round(seconds, 1),
        "lines": lines,
    }
