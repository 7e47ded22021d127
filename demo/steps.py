"""The demo's data and model steps (configure, ingest, features, train, synth), each returning a dataclass."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

from aik import params, storage
from aik.context import Context
from aik.errors import AikError
from aik.train.metrics import Metrics
from demo.state import Record, key

REPO_ROOT = Path(__file__).resolve().parent.parent
#: What the features step must still find on disk to be reused.
FEATURE_OUTPUTS = ("train", "valid", "test", "bundle", "schema", "inference", "report")


@dataclass(frozen=True)
class Configured(Record):
    """The parameters `aik configure` wrote."""

    values: dict[str, str]


def configure(ctx: Context) -> Configured:
    """Notebook 0: derive and store the parameters."""
    return Configured(params.configure(ctx.params, ctx.settings))


@dataclass(frozen=True)
class Ingested(Record):
    """The synthetic logs ingest wrote and its report."""

    report_uri: str
    report: dict[str, Any]

    def outputs_exist(self) -> bool:
        """Whether the report is still there."""
        return storage.exists(self.report_uri)


def ingest(ctx: Context, rows: int, seed: int) -> Ingested:
    """Notebook 1: synthetic iPinYou logs with a known truth."""
    from aik.ingest import REPORT_NAME, ingest_synthetic

    report = ingest_synthetic(ctx, rows=rows, seed=seed, replace=True)  # the demo's own dataset
    return Ingested(storage.join(ctx.params.get(params.RAW_DATA), REPORT_NAME), report)


@dataclass(frozen=True)
class Featured(Record):
    """What the feature job reported: its rows, the positive rate, each split's rows, its outputs."""

    rows: int
    positive_rate: float | None
    split_rows: dict[str, int]
    #: Output name (train, valid, test, bundle, schema, inference, report) -> URI.
    outputs: dict[str, str]

    def outputs_exist(self) -> bool:
        """Whether every output is still there."""
        return all(storage.exists(self.outputs[k]) for k in FEATURE_OUTPUTS)


def features(ctx: Context) -> Featured:
    """Notebook 2: the Spark feature job in local mode."""
    from aik.features import run_features

    report = run_features(ctx, "bid-filtering")
    return Featured(
        rows=report.rows,
        positive_rate=report.positive_rate,
        split_rows={name: split.rows for name, split in report.splits.items()},
        outputs=asdict(report.outputs),
    )


@dataclass(frozen=True)
class Trained:
    """A training run: its metrics, its release and where its model and reports are."""

    metrics: Metrics
    #: The release's manifest URI.
    release: str
    model_uri: str
    candidate_uri: str
    #: Report name (metrics.json, the plots) -> URI in the release.
    reports: dict[str, str]
    published: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the metrics as metrics.json holds them)."""
        return {
            "metrics": self.metrics.to_dict(),
            "release": self.release,
            "model_uri": self.model_uri,
            "candidate_uri": self.candidate_uri,
            "reports": self.reports,
            "published": self.published,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Read back what `to_dict` wrote."""
        return cls(**{**data, "metrics": Metrics.from_dict(data["metrics"])})

    def outputs_exist(self) -> bool:
        """Whether the release, the model and the reports are still there."""
        return all(storage.exists(u) for u in (self.release, self.candidate_uri, *self.reports.values()))


def train(ctx: Context, seed: int, publish: bool) -> Trained:
    """Notebook 3: train, gate and write a release (made live when `publish`)."""
    from aik.train.workflow import TrainOptions, train_and_publish

    # a model that fails a gate raises GateFailed (an AikError naming the gates): the step fails with it
    result = train_and_publish(ctx, TrainOptions(seed=seed, publish=publish, baselines=publish))
    return Trained(
        metrics=result.metrics,
        release=result.release.manifest_uri,
        model_uri=result.model_uri,
        candidate_uri=result.candidate_uri,
        reports=result.candidate_reports,
        published=result.published,
    )


@dataclass(frozen=True)
class Synthesized(Record):
    """The CDK app synthesized offline."""

    cdk_out: str
    templates: list[str]
    log: str

    def outputs_exist(self) -> bool:
        """Whether every template is still there."""
        return all(storage.exists(t) for t in self.templates)


def stacks_key() -> str:
    """A digest of the CDK app's sources (synth reruns when they change)."""
    files = sorted([REPO_ROOT / "app.py", REPO_ROOT / "cdk.json", *(REPO_ROOT / "stacks").rglob("*.py")])
    return key([(str(f.relative_to(REPO_ROOT)), hashlib.sha256(f.read_bytes()).hexdigest()) for f in files])


def synth(directory: Path) -> Synthesized:
    """`cdk synth` of the app, offline and environment-agnostic as `make synth`."""
    outdir = directory / "cdk.out"
    env = {**os.environ, "CDK_OUTDIR": str(outdir), "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}
    for var in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"):
        env.pop(var, None)
    log_path = directory / "synth.log"
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
    return Synthesized(cdk_out=str(outdir), templates=templates, log=str(log_path))
