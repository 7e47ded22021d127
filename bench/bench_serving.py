"""Serving benchmark: scoring cost, end-to-end latency/throughput against a no-op server, batch rate.

    .venv/bin/python bench/bench_serving.py [--quick] [--end-to-end-only] [--out bench/out/serving]

Everything is measured in this one run on this machine, and every figure is printed with its baseline:
(a) scoring cost per request (raw BidRequest -> 7 features -> likelihood) of the server's path, against
    the same features scored by xgboost `inplace_predict` per call and by a new DMatrix per call (the
    original server's method), for models of several sizes and the two shapes `aik train` publishes;
(b) end-to-end single-connection throughput and p50/p99 through the real server (serving the model of
    the kit's default training preset), against the same server in echo mode (no scoring: the Thrift
    stack's own limit), and p99 at a paced 10k requests/s;
(c) batch predictions per second of the compiled kernels against xgboost's batch prediction.
Server and clients run in separate processes (`python -m filtering_server`, `python -m
ad_server_emulator`), so they do not share a GIL. Targets are printed beside the figures; nothing here
asserts on time. Scoring figures are CPU time per call (thread_time), the median of repeats, so other
load on the machine inflates them less than wall-clock would; end-to-end figures are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "serve"))  # the serving tests' artifacts and forest helpers

from forest_support import forest_of, predict_parallel  # noqa: E402
from serving_fixtures import (  # noqa: E402
    Artifacts,
    StatsdLines,
    build_artifacts,
    publish_booster,
    train_booster,
)

from ad_server_emulator.emulator import bid_request  # noqa: E402
from ad_server_emulator.report import LATENCIES_NPY, REPORT_JSON  # noqa: E402
from aik import dashboard  # noqa: E402
from aik.settings import Settings  # noqa: E402
from aik.train.presets import DEFAULT, NUMERIC  # noqa: E402
from filtering_server.model import ModelSources, ServedModel, load_model  # noqa: E402
from filtering_server.process import ServerProcess  # noqa: E402

KIT_DEFAULT = "the kit's default preset: depth 1, 2000 categorical trees"
#: Emulator processes of the paced run (two connections each, 5,000 requests/s per process).
PACED_CLIENTS = 2
TARGETS = {
    "scoring_us": 10.0,
    "speedup_vs_inplace": 10.0,
    "throughput_vs_echo": 0.6,
    "p99_at_10k_ms": 1.0,
    "batch_per_s": 1_000_000,
}


def per_call_us(fn: Callable[[Any], Any], items: Sequence[Any], repeats: int = 5) -> float:
    """Median over repeats of the CPU time per call of `fn` over `items`, in microseconds."""
    for item in items[:50]:
        fn(item)
    runs = []
    for _ in range(repeats):
        start = time.thread_time()
        for item in items:
            fn(item)
        runs.append((time.thread_time() - start) / len(items) * 1e6)
    return statistics.median(runs)


def scoring(model: ServedModel, booster: Any, requests: Sequence[Any], quick: bool) -> dict[str, float]:
    """(a) per-request cost of our path vs xgboost per call, each with the same feature transform."""
    import xgboost

    booster.set_param({"nthread": 1})  # faster than the default for one row (no thread wake-up)
    n = len(requests)
    slow = requests[: max(200, n // 20)]
    features = model.fast_features  # the transform the server runs (score inlines the same closure)
    ours = per_call_us(model.score, requests)
    transform = per_call_us(features, requests)
    kernel_rows = [features(r) for r in requests]
    kernel = per_call_us(lambda row: model.forest.predict7(*row), kernel_rows)
    walked: dict[str, float] = {}
    if model.forest.layout == "additive":  # the same trees walked one by one, as before the folding
        trees = forest_of(booster, layout="complete")
        walked["walked_kernel_us"] = per_call_us(lambda row: trees.predict7(*row), kernel_rows)

    def inplace(request: Any) -> float:
        row = np.asarray([features(request)], dtype=np.float32)
        return float(booster.inplace_predict(row, validate_features=False)[0])

    def new_dmatrix(request: Any) -> float:
        row = xgboost.DMatrix(np.asarray([features(request)], dtype=np.float32))
        return float(booster.predict(row, validate_features=False)[0])

    inplace_us = per_call_us(inplace, slow, repeats=3 if quick else 5)
    dmatrix_us = per_call_us(new_dmatrix, slow, repeats=3 if quick else 5)
    return {
        "ours_us": ours,
        "ours_transform_us": transform,
        "ours_kernel_us": kernel,
        "layout": model.forest.layout,
        "trees": model.forest.num_trees,
        **walked,
        "xgboost_inplace_us": inplace_us,
        "xgboost_new_dmatrix_us": dmatrix_us,
        "speedup_vs_inplace": inplace_us / ours,
        "speedup_vs_new_dmatrix": dmatrix_us / ours,
    }


def batch_rate(model: ServedModel, booster: Any, features: np.ndarray) -> dict[str, float]:
    """(c) predictions per second on a large feature matrix."""
    rows = np.ascontiguousarray(features, dtype=np.float32)
    model.forest.predict(rows[:1000])
    predict_parallel(model.forest, rows[:1000])

    def best(
        fn: Callable[[], Any], repeats: int = 3, clock: Callable[[], float] = time.perf_counter
    ) -> float:
        times = []
        for _ in range(repeats):
            start = clock()
            fn()
            times.append(clock() - start)
        return min(times)

    booster.set_param({"nthread": os.cpu_count() or 1})
    return {
        "rows": float(rows.shape[0]),
        "ours_1_thread_per_s": rows.shape[0]
        / best(lambda: model.forest.predict(rows), clock=time.thread_time),
        "ours_parallel_per_s": rows.shape[0] / best(lambda: predict_parallel(model.forest, rows)),
        "xgboost_inplace_per_s": rows.shape[0]
        / best(lambda: booster.inplace_predict(rows, validate_features=False)),
    }


def server_timings(collector: StatsdLines) -> np.ndarray:
    """The server's `filtering_latency` timings (its own view of latency) received so far, then forget."""
    time.sleep(1.5)  # the server flushes every second
    out = np.asarray(collector.values(f"{dashboard.SERVER_PREFIX}.{dashboard.FILTERING_LATENCY}", "ms"))
    collector.clear()
    return out


def start_server(workspace: Path, out: Path, statsd_port: int, echo: bool = False) -> ServerProcess:
    """`python -m filtering_server` on a free port, in its own process."""
    name = "echo" if echo else "model"
    extra = ["--watch-interval", "0", "--statsd-host", "127.0.0.1", "--statsd-port", str(statsd_port)]
    return ServerProcess(
        Settings(workspace=workspace),
        extra_args=extra + (["--echo"] if echo else []),
        log_path=out / f"server-{name}.log",
    )


def emulate(workspace: Path, port: int, out: Path, name: str, *args: str) -> subprocess.Popen[str]:
    """Start the emulator in its own process (`collect` waits for it and reads its report)."""
    target = out / name
    command = [sys.executable, "-m", "ad_server_emulator", "127.0.0.1", *args, "--port", str(port)]
    command += ["--workspace", str(workspace), "--output", str(target), "--no-metrics"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def collect(proc: subprocess.Popen[str], out: Path, name: str) -> tuple[dict[str, Any], np.ndarray]:
    """The report and raw latencies of a finished emulator run."""
    _, err = proc.communicate(timeout=900)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"emulator {name} failed: {err[-2000:]}")
    target = out / name
    report = json.loads((target / REPORT_JSON).read_text())
    return report, np.load(target / LATENCIES_NPY)


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


def end_to_end(workspace: Path, out: Path, quick: bool) -> dict[str, Any]:
    """(b) the real server vs the echo server: one connection closed-loop, then paced at 10k/s.

    Both servers run side by side and the runs alternate between them (echo, model, echo, model, ...),
    so a burst of other load on the machine hits both alike; each figure is the best of its repeats.
    The paced runs use two emulator processes with two connections each, at 2,500 requests/s per
    connection: a Python client spends ~76 us of CPU per request here, under one GIL, so a single client
    process at 10k/s would mostly measure its own queue (measured: p99 1.34 ms from one process with
    four connections against 0.92 ms from two with two, same server, same rate). The server's own
    latency (the `filtering_latency` timer it sends to StatsD) is reported beside the client's, which
    still includes the clients' scheduling on a 2-core machine shared with the server.
    """
    n = "4000" if quick else "20000"
    duration = "4" if quick else "10"
    repeats = 2 if quick else 3
    collector = StatsdLines()
    servers = {
        mode: start_server(workspace, out, collector.port, echo=mode == "echo") for mode in ("echo", "model")
    }
    runs: dict[str, dict[str, list[Any]]] = {
        mode: {"single": [], "paced": [], "batch": []} for mode in servers
    }
    try:
        for rep in range(repeats):
            for mode, server in servers.items():
                name = f"{mode}-1conn-{rep}"
                single, _ = collect(
                    emulate(workspace, server.port, out, name, "1", n, "--warmup", "500"), out, name
                )
                runs[mode]["single"].append(single)
        for rep in range(repeats):
            for mode, server in servers.items():
                server_timings(collector)
                paced_args = ("2", "0", "--rate", "5000", "--duration", duration, "--warmup", "200")
                names = [f"{mode}-10k-{rep}-{k}" for k in range(PACED_CLIENTS)]
                procs = [emulate(workspace, server.port, out, name, *paced_args) for name in names]
                results = [collect(proc, out, name) for proc, name in zip(procs, names, strict=True)]
                report = {
                    "throughput_rps": sum(r["throughput_rps"] for r, _ in results),
                    "errors": sum(r["errors"] for r, _ in results),
                }
                latency = np.concatenate([lat for _, lat in results])
                runs[mode]["paced"].append((report, latency, server_timings(collector)))
        for mode, server in servers.items():
            name = f"{mode}-batch"
            batch, _ = collect(
                emulate(workspace, server.port, out, name, "1", n, "--batch-size", "100"), out, name
            )
            runs[mode]["batch"].append(batch)
    finally:
        for server in servers.values():
            server.stop()
        collector.close()
    results: dict[str, Any] = {}
    for mode, r in runs.items():
        single = max(r["single"], key=lambda x: x["throughput_rps"])
        report, latency, server_side = min(r["paced"], key=lambda x: _pct(x[1], 99))
        results[mode] = {
            "single_rps": single["throughput_rps"],
            "single_rps_runs": [x["throughput_rps"] for x in r["single"]],
            "single_p50_ms": single["latency_ms"]["p50"],
            "single_p99_ms": single["latency_ms"]["p99"],
            "paced_rps": report["throughput_rps"],
            "paced_p50_ms": _pct(latency, 50),
            "paced_p99_ms": _pct(latency, 99),
            "paced_p99_ms_runs": [_pct(x[1], 99) for x in r["paced"]],
            "paced_errors": sum(x[0]["errors"] for x in r["paced"]),
            "paced_server_p50_ms": _pct(server_side, 50),
            "paced_server_p99_ms": _pct(server_side, 99),
            "batch100_requests_per_s": r["batch"][0]["throughput_rps"],
            "errors": sum(x["errors"] for x in r["single"]) + r["batch"][0]["errors"],
        }
    results["throughput_vs_echo"] = results["model"]["single_rps"] / results["echo"]["single_rps"]
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rows and requests (a smoke run)")
    parser.add_argument(
        "--end-to-end-only", action="store_true", help="only (b): skip the scoring and batch measurements"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "serving")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")

    from filtering_server import forest, wire

    forest.warm_up()
    wire.warm_up()
    workspace = Path(tempfile.mkdtemp(prefix="aik-bench-")) / "ws"
    rows = 50_000 if args.quick else 200_000
    artifacts: Artifacts = build_artifacts(
        workspace, rows=rows, domains=3000, rounds=100, depth=6, inference_rows=20_000
    )
    requests = [bid_request(r) for r in artifacts.rows[: 20_000 if not args.quick else 5_000]]
    models = [
        ("original kit's size: depth 5, 50 trees", "numeric", 5, 50, None),
        ("depth 6, 100 trees", "numeric", 6, 100, None),
        ("depth 8, 300 trees", "numeric", 8, 300, None),
        ("categorical splits: depth 6, 100 trees", "categorical", 6, 100, None),
        # what `aik train` publishes: the default preset stops early at 200-2,000 rounds; the top of it
        (KIT_DEFAULT, "categorical", 1, 2000, dict(DEFAULT.params)),
        # `aik train --sagemaker` (the built-in algorithm reads no categoricals): 550 trees on the demo data
        ("the kit's numeric preset (SageMaker): depth 2, 600 trees", "numeric", 2, 600, dict(NUMERIC.params)),
    ]
    if args.end_to_end_only:
        models = [m for m in models if m[0] == KIT_DEFAULT]
    report: dict[str, Any] = {"scoring": {}, "batch": {}}
    served: tuple[ServedModel, Any] | None = None
    big = np.tile(artifacts.features, (max(1, 1_000_000 // artifacts.features.shape[0]), 1))
    for label, flavour, depth, rounds, extra in models:
        booster = train_booster(
            artifacts.features,
            artifacts.labels,
            artifacts.specs,
            flavour=flavour,
            rounds=rounds,
            depth=depth,
            extra=extra,
        )
        publish_booster(artifacts, booster)
        model = load_model(ModelSources.from_store(artifacts.store))
        if label == KIT_DEFAULT:
            served = model, booster
        if args.end_to_end_only:
            continue
        report["scoring"][label] = scoring(model, booster, requests, args.quick)
        if label.startswith("depth 6") or label == KIT_DEFAULT:
            report["batch"][label] = batch_rate(model, booster, big)
    assert served is not None
    publish_booster(artifacts, served[1])  # the servers serve what `aik train` publishes by default
    report["end_to_end"] = end_to_end(workspace, out, args.quick)
    report["seconds"] = time.monotonic() - started
    report["targets"] = TARGETS
    (out / "serving.json").write_text(json.dumps(report, indent=2) + "\n")
    print_report(report, out)
    shutil.rmtree(workspace.parent, ignore_errors=True)
    return 0


def _mark(ok: bool, target: str) -> str:
    return f"[{'meets' if ok else 'MISSES'} target: {target}]"


def print_report(report: dict[str, Any], out: Path) -> None:
    """The figures, each with its baseline and target."""
    if report["scoring"]:
        print("\n(a) scoring cost per request, raw BidRequest -> likelihood (CPU us per call, median of 5)")
    for label, s in report["scoring"].items():
        ok = (
            s["ours_us"] <= TARGETS["scoring_us"] and s["speedup_vs_inplace"] >= TARGETS["speedup_vs_inplace"]
        )
        print(f"  {label}")
        print(
            f"    server path {s['ours_us']:.2f} us (transform {s['ours_transform_us']:.2f} + kernel "
            f"{s['ours_kernel_us']:.2f}); xgboost inplace_predict {s['xgboost_inplace_us']:.1f} us, "
            f"new DMatrix {s['xgboost_new_dmatrix_us']:.1f} us"
        )
        if "walked_kernel_us" in s:
            print(
                f"    {s['layout']} layout: the {s['trees']} trees folded into one table per feature; "
                f"walking them one by one costs {s['walked_kernel_us']:.2f} us in the kernel"
            )
        print(
            f"    speed-up x{s['speedup_vs_inplace']:.1f} vs inplace_predict, "
            f"x{s['speedup_vs_new_dmatrix']:.1f} vs new DMatrix  {_mark(ok, '<= 10 us and >= x10')}"
        )
    e = report["end_to_end"]
    print(
        f"\n(b) end to end over loopback, serving {KIT_DEFAULT} "
        "(emulator and server in separate processes, wall-clock)"
    )
    for mode in ("model", "echo"):
        m = e[mode]
        print(
            f"  {mode:5s}: 1 connection {m['single_rps']:,.0f} requests/s (best of "
            f"{', '.join(f'{v:,.0f}' for v in m['single_rps_runs'])}), p50 {m['single_p50_ms']:.3f} ms, "
            f"p99 {m['single_p99_ms']:.3f} ms"
        )
        print(
            f"         paced 10k/s, 2 client processes x 2 connections: achieved {m['paced_rps']:,.0f}/s, "
            f"client p50 {m['paced_p50_ms']:.3f} ms, p99 {m['paced_p99_ms']:.3f} ms "
            f"({m['paced_errors']} errors); "
            f"in the server p50 {m['paced_server_p50_ms']:.3f} ms, p99 {m['paced_server_p99_ms']:.3f} ms"
        )
        print(f"         filterBatch(100), 1 connection: {m['batch100_requests_per_s']:,.0f} requests/s")
    ratio = e["throughput_vs_echo"]
    print(f"  single-connection throughput, server / echo = {ratio:.2f}  {_mark(ratio >= 0.6, '>= 0.6')}")
    p99, achieved = e["model"]["paced_p99_ms"], e["model"]["paced_rps"]
    ok = p99 <= TARGETS["p99_at_10k_ms"] and achieved >= 9_500
    print(f"  p99 at a paced {achieved:,.0f} requests/s = {p99:.3f} ms  {_mark(ok, '<= 1 ms at 10k/s')}")
    if report["batch"]:
        print("\n(c) batch prediction (1 thread: CPU time; parallel: wall-clock on all cores)")
    for label, b in report["batch"].items():
        best = max(b["ours_1_thread_per_s"], b["ours_parallel_per_s"])
        print(f"  {label}, {b['rows']:,.0f} feature rows")
        print(
            f"    ours {b['ours_1_thread_per_s']:,.0f}/s on 1 thread, {b['ours_parallel_per_s']:,.0f}/s "
            f"parallel; xgboost inplace_predict {b['xgboost_inplace_per_s']:,.0f}/s  "
            f"{_mark(best >= 1_000_000, '>= 1M/s')}"
        )
    print(f"\nbenchmark took {report['seconds']:.0f} s; figures in {out / 'serving.json'}, plots in {out}")


if __name__ == "__main__":
    raise SystemExit(main())
