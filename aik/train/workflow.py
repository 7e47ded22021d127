"""Notebook 3 as one call: read the splits, train (locally or on SageMaker), evaluate, gate, release.

`train_and_publish(ctx, TrainOptions(...))` is what `aik train`, the notebook and the demo call. Every
run writes a release (`aik.releases`: the bundle and schema it was trained on, the booster bound to
that bundle, `metrics.json` and plots, the manifest last) whether or not it passed the gates, so a
rejected model can be inspected; only a release that passes every gate is then made live by switching
the one pointer parameter, so a failed gate (or a crash anywhere before that write) leaves the live
release exactly as it was.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

from aik import releases as R
from aik import storage
from aik.context import Context
from aik.errors import AikError
from aik.train import evaluate as E
from aik.train.assess import evaluate_candidate, fit_baselines, judge, make_reports
from aik.train.families import models as family_models
from aik.train.families.models import Model
from aik.train.gates import GateFailed, GateResult, onnx_parity_gate
from aik.train.metrics import GateReport, Metrics
from aik.train.options import TrainOptions
from aik.train.stages import (
    Inputs,
    data_window,
    load_truth,
    make_candidate,
    model_info,
    obtain_booster,
    obtain_neural,
    read_pipeline,
    read_splits,
    resolve_config,
    split_data,
)

__all__ = ["TrainOptions", "TrainResult", "train_and_publish"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a run produced."""

    release: R.Release
    metrics: Metrics
    published: bool
    gates: list[GateResult]
    #: The published model URI (`/aik/xgboost/path`), whether or not this run replaced it.
    model_uri: str
    candidate_uri: str
    #: Report name -> URI (metrics.json and the PNG plots) of this run's release.
    candidate_reports: dict[str, str]
    #: The same when the release was made live (empty when not published).
    published_reports: dict[str, str]
    #: The model as written and reloaded: a Booster, or a neural family's NeuralModel.
    model: Model
    #: Steps after the release was written (and made live) that failed: the run still succeeded.
    warnings: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[GateResult]:
        """Gates that failed."""
        return [g for g in self.gates if not g.passed]


def train_and_publish(ctx: Context, options: TrainOptions | None = None) -> TrainResult:
    """Train, evaluate on the test split, gate, and publish; raises GateFailed (with .result) on a gate."""
    options = options or TrainOptions()
    if options.use_case not in E.USE_CASES:
        raise AikError(f"unknown use case {options.use_case!r} (choose from {', '.join(E.USE_CASES)})")
    config = resolve_config(options)
    started = time.monotonic()
    timings: dict[str, float] = {}

    def timed(name: str, since: float) -> float:
        now = time.monotonic()
        timings[name] = round(now - since, 2)
        return now

    store = ctx.params
    inputs = Inputs.from_store(store)
    pipeline = read_pipeline(inputs)
    t = time.monotonic()
    splits = read_splits(inputs, options, config)
    t = timed("read_s", t)
    if config is None:
        trained, training = obtain_neural(options, splits.train, splits.valid, pipeline.indexer)
    else:
        trained, training = obtain_booster(ctx, options, config, splits.train, splits.valid, pipeline.indexer)
    t = timed("train_s", t)
    candidate = make_candidate(trained, pipeline.indexer, store, options.family)
    truth = load_truth(inputs.raw_data)
    evaluation = evaluate_candidate(candidate.model, splits, pipeline.indexer, truth, options)
    t = timed("evaluate_s", t)
    if options.baselines:
        fit_baselines(splits, evaluation, options)
    timed("baselines_s", t)
    gates = judge(candidate.model, splits.train.columns, evaluation, options.limits)
    onnx = None
    if (
        config is None
        and evaluation.p_test is not None
        and not family_models.is_booster(candidate.model)
        and family_models.is_torch_model(candidate.model)
    ):
        # a neural model is exported for ONNX Runtime now, judged by its parity with PyTorch
        from aik.train.families.onnx_export import export_onnx

        onnx = export_onnx(candidate.model, splits.test.X, R.indexer_sha256(pipeline.indexer))
        gates.append(onnx_parity_gate(onnx.max_abs_diff, onnx.parity_rows, onnx.tolerance))
        timings["onnx_s"] = round(onnx.seconds, 2)
    passed = all(g.passed for g in gates)
    reports = make_reports(splits, evaluation, pipeline.indexer, options)
    will_publish = passed and options.publish
    timings["total_s"] = round(time.monotonic() - started, 2)
    metrics = Metrics(
        run_id=candidate.run_id,
        release=candidate.run_id,
        created_at=candidate.created.isoformat(timespec="seconds"),
        use_case=options.use_case,
        test=evaluation.test,
        oracle=evaluation.oracle,
        oracle_ratio=evaluation.oracle_ratio,
        model=replace(model_info(candidate, config, training), onnx=onnx.describe() if onnx else None),
        data=split_data(splits),
        calibration=reports.calibration,
        baselines=evaluation.baselines,
        gates=GateReport(passed=passed, limits=options.limits, checks=gates),
        published=will_publish,
        timings=timings,
        plots={name: f"{R.REPORTS_DIR}/{name}" for name in reports.plots},
    )
    document = metrics.to_dict()
    release = R.write_release(
        candidate.releases_root,
        bundle=pipeline.bundle,
        schema=pipeline.schema,
        model=candidate.data,
        family=options.family,
        model_name=candidate.file_name,
        extras={"onnx": (family_models.ONNX_FILE, onnx.data)} if onnx is not None else None,
        metrics=document,
        plots=reports.plots,
        data=data_window(pipeline.features_report, metrics.data),
        gates=document["gates"],
        now=candidate.created,
        rid=candidate.run_id,
    )
    candidate_reports = {name: storage.join(release.uri, R.REPORTS_DIR, name) for name in reports.plots}
    candidate_reports[R.FILE_NAMES["metrics"]] = release.file_uri("metrics")
    published_reports: dict[str, str] = {}
    warnings: list[str] = []
    if will_publish:
        R.promote(store, release, warnings=warnings)  # the pointer switch: the last write of a publish
        published_reports = dict(candidate_reports)
    try:
        R.prune(store, candidate.releases_root, keep=options.keep_candidates)
    except Exception as exc:  # bookkeeping after the release (and its switch): it stands all the same
        R.after_publish(
            warnings,
            f"release {release.id} is {'live' if will_publish else 'written'}, but pruning the old releases "
            f"failed: {exc}",
        )
    result = TrainResult(
        release=release,
        metrics=metrics,
        published=will_publish,
        gates=gates,
        model_uri=inputs.model,
        candidate_uri=candidate.uri,
        candidate_reports=candidate_reports,
        published_reports=published_reports,
        model=candidate.model,
        warnings=warnings,
    )
    if not passed:
        raise GateFailed(result.failures, result)
    return result
