"""`aik demo`: the whole kit end to end on one machine, step by step, with a summary that names its sources.

Steps: configure, ingest (synthetic logs with a known truth), features (Spark, local mode), train (gates,
plots), retrain (a second model with another seed, kept as a candidate), serve (StatsD receiver standing
in for the CloudWatch agent, the filtering server, the emulator's load, a hot swap to the second model
during the load, the dashboard rendered), weak (a model trained on a few rows) and abtest (experiments
between releases of known quality closed by the synthetic world, judged by `aik monitor`), synth (the
CDK app). A step whose inputs have not changed since its last successful run is reused (`make
demo-clean` starts over); serve and abtest always run.
"""

from __future__ import annotations

import time

from aik import params
from aik.context import Context
from demo import steps
from demo.abtest import WEAK_ROWS, AbTested, abtest, train_weak
from demo.config import DemoConfig
from demo.serve import Served, serve
from demo.state import StepFailed, StepRunner, key
from demo.summary import Summary, build_summary

__all__ = ["DemoConfig", "StepFailed", "StepRunner", "run_demo"]


def run_demo(ctx: Context, config: DemoConfig) -> Summary:
    """Run every step; raise `StepFailed` naming the first step that fails; return the summary."""
    started = time.monotonic()
    run = StepRunner.open(ctx, fresh=config.fresh)
    configured = run.step("configure", None, steps.Configured, lambda: steps.configure(ctx))
    ingest_key = key("ingest", config.rows, config.seed, configured.values[params.DATA_BUCKET])
    ingest = run.step(
        "ingest",
        ingest_key,
        steps.Ingested,
        lambda: steps.ingest(ctx, config.rows, config.seed),
        steps.Ingested.outputs_exist,
    )
    features_key = key("features", ingest_key)
    features = run.step(
        "features", features_key, steps.Featured, lambda: steps.features(ctx), steps.Featured.outputs_exist
    )
    first = run.step(
        "train",
        key("train", features_key),
        steps.Trained,
        lambda: steps.train(ctx, seed=0, publish=True),
        steps.Trained.outputs_exist,
    )
    second = run.step(
        "retrain",
        key("retrain", features_key, config.swap_seed),
        steps.Trained,
        lambda: steps.train(ctx, seed=config.swap_seed, publish=False),
        steps.Trained.outputs_exist,
    )
    served = run.step(
        "serve",
        None,
        Served,
        lambda: serve(
            ctx,
            run.directory,
            first,
            second,
            requests=config.requests,
            connections=config.connections,
            swap_at=config.swap_at,
        ),
    )
    ab = None
    if config.ab_requests > 0:
        weak = run.step(
            "weak",
            key("weak", features_key, WEAK_ROWS),
            steps.Trained,
            lambda: train_weak(ctx),
            steps.Trained.outputs_exist,
        )
        ab = run.step(
            "abtest",
            None,
            AbTested,
            lambda: abtest(ctx, run.directory, first, weak, config.ab_requests),
        )
    synth = (
        run.step(
            "synth",
            steps.stacks_key(),
            steps.Synthesized,
            lambda: steps.synth(run.directory),
            steps.Synthesized.outputs_exist,
        )
        if config.synth and (steps.REPO_ROOT / "app.py").exists()
        else None
    )
    elapsed = time.monotonic() - started
    summary = build_summary(
        run.directory, config, ingest, features, first, served, ab, synth, run.steps, elapsed
    )
    summary.write(run.directory)
    return summary
