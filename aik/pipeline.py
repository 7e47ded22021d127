"""`aik pipeline run`: ingest new log days -> features -> train -> gates -> publish, as one locked run.

Each step is skipped when its input is unchanged: no new day means no ingest; the feature job runs only
when the window's files differ from those its last report names; training runs only when the feature
report differs from the one the newest release was built from. A lock file in the workspace keeps two
runs from interleaving. A failed step raises `StepFailed` naming it; nothing before the pointer switch
touches the live release, so it stays as it was. What fails after the switch (the booster's copy for the
original flow, pruning old releases) cannot undo it: the run succeeds with `PipelineRun.warnings`.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aik import releases as R
from aik import storage
from aik.context import Context
from aik.errors import AikError
from aik.features.window import Window, file_day
from aik.params import BID_SOURCE, IMP_SOURCE, OUTPUT_TRANSFORMED, RAW_DATA

log = logging.getLogger("aik.pipeline")

LOCK_NAME = "pipeline.lock"
WORLD_FILE = "world.json"
STEPS = ("ingest", "features", "train", "gates", "publish")


class StepFailed(AikError):
    """A step of the pipeline failed; the live release is untouched."""

    def __init__(self, step: str, cause: BaseException, live: str | None) -> None:
        self.step = step
        self.cause = cause
        kept = f"the live release {live} is untouched" if live else "no release is live"
        super().__init__(f"step {step} failed: {cause} ({kept})")


class PipelineLocked(AikError):
    """Another run holds the lock."""


@dataclass(frozen=True)
class PipelineOptions:
    """What one run does (the CLI's defaults)."""

    #: `synthetic` (the next day of a drifting synthetic world), or a directory/prefix of log files
    source: str = "synthetic"
    window: Window = field(default_factory=lambda: Window(7, 1))
    use_case: str = "bid-filtering"
    #: synthetic world: rows per day, seed, drift (radians per day), first day, days made by the first run
    rows_per_day: int = 200_000
    seed: int = 7
    drift: float = 0.05
    start: datetime.date = datetime.date(2013, 6, 6)
    initial_days: int | None = None
    #: training: the model family (`aik train --model`) and xgboost's preset
    family: str = "xgboost"
    preset: str | None = None
    baselines: bool = False
    nthread: int | None = None
    keep: int = R.DEFAULT_KEEP


@dataclass
class StepResult:
    """One step's outcome."""

    name: str
    ran: bool
    seconds: float
    detail: str


@dataclass
class PipelineRun:
    """What a run did."""

    steps: list[StepResult] = field(default_factory=list)
    release: R.Release | None = None
    published: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    #: Steps after the pointer switch that failed (the release is live; the run succeeded).
    warnings: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Total time of the steps."""
        return sum(s.seconds for s in self.steps)


@contextlib.contextmanager
def pipeline_lock(workspace: Path) -> Iterator[Path]:
    """An exclusive lock on `<workspace>/pipeline.lock` for the whole run (PipelineLocked when held)."""
    path = Path(workspace) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise PipelineLocked(
                f"another pipeline run holds {path} ({holder}); try again when it ends"
            ) from exc
        try:
            f.seek(0)
            f.truncate()
            f.write(
                f"pid {os.getpid()} since "
                f"{datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}\n"
            )
            f.flush()
            yield path
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------------------
# ingest new days
# ------------------------------------------------------------------------------------------------


def ingested_days(ctx: Context) -> list[str]:
    """Days (yyyyMMdd) of the bid (or, without bids, impression) logs already ingested."""
    for name in (BID_SOURCE, IMP_SOURCE):
        try:
            uri = ctx.params.get(name)
        except AikError:
            continue
        days = sorted({d for u in storage.list_uris(uri) if (d := file_day(u))})
        if days:
            return days
    return []


def _world(raw_data: str, options: PipelineOptions) -> dict[str, Any]:
    """The synthetic world's settings: fixed by the first run (later runs continue the same world)."""
    uri = storage.join(raw_data, "truth", WORLD_FILE)
    if storage.exists(uri):
        return json.loads(storage.read_text(uri))
    world = {
        "seed": options.seed,
        "rows_per_day": options.rows_per_day,
        "drift": options.drift,
        "start": options.start.isoformat(),
    }
    storage.write_text(uri, json.dumps(world, indent=2) + "\n")
    return world


def ingest_synthetic_day(ctx: Context, options: PipelineOptions) -> list[str]:
    """Generate the next day(s) of the drifting world (the first run: enough days for one window)."""
    from aik.ingest.raw import final_uris, point_sources, staged, write_report
    from aik.synthetic import SyntheticConfig, generate

    raw_data = ctx.params.get(RAW_DATA)
    days = ingested_days(ctx)
    world = _world(raw_data, options)
    origin = datetime.date.fromisoformat(world["start"])
    if days:
        first = datetime.datetime.strptime(days[-1], "%Y%m%d").date() + datetime.timedelta(days=1)
        count = 1
    else:
        first = origin
        count = options.initial_days or options.window.days + options.window.test_days
    config = SyntheticConfig(
        rows=int(world["rows_per_day"]) * count,
        seed=int(world["seed"]),
        start=first,
        days=count,
        drift=float(world["drift"]),
        world_start=origin,
    )
    with staged(raw_data, append=True) as stage:  # a failure adds none of the new days
        report = generate(stage, config)
        doc = {
            "source": "synthetic",
            "raw_data": raw_data,
            "appended": True,
            **report.to_dict(),
            "world": world,
        }
        write_report(stage, final_uris(doc, stage, raw_data))
    write_report(raw_data, {**final_uris(doc, stage, raw_data), "sources": point_sources(ctx, raw_data)})
    return [f"{first + datetime.timedelta(days=i):%Y%m%d}" for i in range(count)]


def ingest_new_files(ctx: Context, directory: str) -> list[str]:
    """Copy (checking every line) the log files under `directory` whose day is not ingested yet.

    The standalone ingest's append (`aik.ingest.ingest_from`): a day already ingested with the same
    size is skipped, one with other contents fails the step.
    """
    from aik.ingest.files import ingest_from

    report = ingest_from(ctx, directory)
    return sorted({d for f in report["files"] if (d := file_day(f["uri"]))})


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------


def _features_report(ctx: Context) -> tuple[dict[str, Any], str | None]:
    """The last feature job's report and its sha256 (({}, None) before the first run)."""
    transformed = ctx.params.get(OUTPUT_TRANSFORMED)
    uri = storage.join(transformed.rstrip("/").rsplit("/", 1)[0], "features-report.json")
    if not storage.exists(uri):
        return {}, None
    data = storage.read_bytes(uri)
    return json.loads(data), hashlib.sha256(data).hexdigest()


def _features_current(ctx: Context, options: PipelineOptions) -> bool:
    """Whether the last feature job read exactly the files the window would read now, split the same way."""
    from aik.features.job import log_files, sources_from_params
    from aik.features.window import select_files

    report, _ = _features_report(ctx)
    if not report or report.get("use_case") != options.use_case:
        return False
    sources = sources_from_params(ctx.params)
    kinds = ("bid", "imp") if options.use_case == "bid-filtering" else ("imp", "clk")
    uris = {"bid": sources.bid, "imp": sources.imp, "clk": sources.clk}
    files, chosen = select_files({k: log_files(uris[k], k) for k in kinds}, kinds[0], options.window)
    wanted = {u: storage.fingerprint(u) for k in kinds for u in files[k]}
    return report.get("input_files") == wanted and report.get("split") == chosen.as_dict()


def run_pipeline(
    ctx: Context, options: PipelineOptions, *, on_step: Callable[[StepResult], None] | None = None
) -> PipelineRun:
    """One iteration under the lock; StepFailed names the step that failed."""
    from aik.features.job import run_features
    from aik.train.gates import GateFailed
    from aik.train.workflow import TrainOptions, train_and_publish

    run = PipelineRun()
    live = R.live_uri(ctx.params)

    def record(name: str, ran: bool, started: float, detail: str) -> None:
        result = StepResult(name, ran, round(time.monotonic() - started, 2), detail)
        run.steps.append(result)
        log.info("pipeline: %s %s (%s, %.1f s)", name, "done" if ran else "skipped", detail, result.seconds)
        if on_step is not None:
            on_step(result)

    with pipeline_lock(ctx.settings.workspace):
        t = time.monotonic()
        try:
            if options.source == "synthetic":
                added = ingest_synthetic_day(ctx, options)
            else:
                added = ingest_new_files(ctx, options.source)
        except Exception as exc:
            raise StepFailed("ingest", exc, live) from exc
        record("ingest", bool(added), t, f"new days {', '.join(added)}" if added else "no new day")

        t = time.monotonic()
        try:
            if _features_current(ctx, options):
                record("features", False, t, "the window's files are unchanged")
            else:
                report = run_features(ctx, options.use_case, window=options.window)
                split = report.split
                record(
                    "features",
                    True,
                    t,
                    f"{report.rows:,} rows, train {split['first_day']}..{split['last_day']}, "
                    f"test {', '.join(split['test_days'])}",
                )
        except Exception as exc:
            raise StepFailed("features", exc, live) from exc

        t = time.monotonic()
        _, features_sha = _features_report(ctx)
        newest = R.list_releases(R.releases_root(ctx.params))
        built_from = newest[0].data.get("features_report", {}).get("sha256") if newest else None
        if features_sha is not None and built_from == features_sha and newest[0].family == options.family:
            record("train", False, t, f"release {newest[0].id} was built from these features")
            run.release = newest[0]
            if not newest[0].passed:  # the same data would fail the same gates: say so again
                raise StepFailed("gates", R.ReleaseError(f"release {newest[0].id} failed the gates"), live)
            return run
        train_options = TrainOptions(
            family=options.family,
            preset=options.preset,
            use_case=options.use_case,
            baselines=options.baselines,
            nthread=options.nthread,
            keep_candidates=options.keep,
            publish=True,
        )
        try:
            result = train_and_publish(ctx, train_options)
        except GateFailed as exc:
            record("train", True, t, "trained")
            raise StepFailed("gates", exc, live) from exc
        except R.ReleaseError as exc:
            raise StepFailed("publish", exc, live) from exc
        except Exception as exc:
            raise StepFailed("train", exc, live) from exc
        run.release, run.published, run.metrics = result.release, result.published, result.metrics.to_dict()
        run.warnings = list(result.warnings)
        auc, oracle = run.metrics.get("auc"), run.metrics.get("oracle_ratio")
        record(
            "train",
            True,
            t,
            f"AUC {auc:.4f}"
            + (f", {oracle:.3f} of the oracle" if oracle else "")
            + " (gates and publish included)",
        )
        record("gates", True, time.monotonic(), "passed")
        record(
            "publish",
            result.published,
            time.monotonic(),
            f"release {result.release.id} is live"
            + (f" ({len(run.warnings)} warning(s) after the switch)" if run.warnings else ""),
        )
    return run


def parse_duration(text: str) -> float:
    """`90s`, `15m`, `6h`, `1d` (or plain seconds) -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    try:
        seconds = float(value[:-1]) * units[value[-1]] if value and value[-1] in units else float(value)
    except ValueError as exc:
        raise ValueError(f"not a duration: {text!r} (like 90s, 15m, 6h, 1d)") from exc
    if seconds <= 0:
        raise ValueError(f"the duration must be positive: {text!r}")
    return seconds
