"""One backtest candidate as a SageMaker training job in the kit's image: `python -m aik.backtest.job`.

`aik --backend aws backtest --on sagemaker` starts one training job per candidate with this module as
the container's entrypoint (`AlgorithmSpecification.ContainerEntrypoint`). SageMaker copies the channels
`train`, `validation`, `test` (the feature job's parquet splits) and `pipeline` (the MLeap bundle) to
`/opt/ml/input/data/<channel>/` and the hyperparameters to `/opt/ml/input/config/hyperparameters.json`
(the toolkit's `SM_*` variables override both, as for `aik.train.sagemaker_entry`). The program runs the
local backtest's own `run_candidate` on those files, so a candidate trains, predicts and is timed by
the same code in both places, and writes into `/opt/ml/model/` (uploaded as `model.tar.gz`):
`result.json` (metrics, calibration deciles, training and model details, timings), `p_test.npy` (its
test predictions, for the report's overlaid curves) and the model file under `candidates/<name>/`.
A failed candidate exits 1 with its reason in `/opt/ml/output/failure` (the job's FailureReason).

Hyperparameters (strings, as SageMaker passes them): `candidate` (the candidate as JSON,
`Candidate.as_dict()`), `seed` (the backtest's: the rows every candidate reads), `max_rows`, `threads`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from aik.backtest.runner import CandidateResult, Job, SplitUris, run_candidate
from aik.backtest.spec import parse_candidate
from aik.errors import AikError
from aik.train.sagemaker_entry import JobLayout, bundle_file

log = logging.getLogger(__name__)

#: The module SageMaker runs (the job's ContainerEntrypoint is `python -m` it).
ENTRYPOINT = ("python", "-m", "aik.backtest.job")
CHANNELS = ("train", "validation", "test", "pipeline")
RESULT_FILE = "result.json"
PREDICTIONS_FILE = "p_test.npy"


def hyperparameters(
    candidate: Mapping[str, Any], seed: int, max_rows: int | None, threads: int | None
) -> dict[str, str]:
    """The job's hyperparameters (every value a string, as CreateTrainingJob takes them)."""
    out = {"candidate": json.dumps(dict(candidate), sort_keys=True), "seed": str(seed)}
    if max_rows is not None:
        out["max_rows"] = str(max_rows)
    if threads is not None:
        out["threads"] = str(threads)
    return out


def result_document(result: CandidateResult) -> dict[str, Any]:
    """`result.json`: the candidate's result without its predictions (those go to `p_test.npy`)."""
    doc = asdict(result)
    doc.pop("p_test")
    return doc


def read_result(doc: Mapping[str, Any], p_test: np.ndarray | None, model_uri: str | None) -> CandidateResult:
    """A CandidateResult from a job's `result.json` and predictions (the model where the client put it)."""
    fields = {k: v for k, v in doc.items() if k in CandidateResult.__dataclass_fields__ and k != "p_test"}
    fields["model_uri"] = model_uri
    return CandidateResult(**fields, p_test=p_test)


def run_job(layout: JobLayout) -> CandidateResult:
    """Train and judge the candidate on the job's channels; writes its outputs into the model directory."""
    hps = layout.hyperparameters
    if "candidate" not in hps:
        raise AikError("the job has no `candidate` hyperparameter (the backtest's candidate as JSON)")
    try:
        doc = json.loads(hps["candidate"])
    except json.JSONDecodeError as exc:
        raise AikError(f"the `candidate` hyperparameter is not JSON ({exc})") from exc
    seed = int(hps.get("seed", "0"))
    candidate = parse_candidate(doc, seed)
    for name in CHANNELS:
        if not layout.channels[name].is_dir():
            raise AikError(f"the {name} channel {layout.channels[name]} is missing")
    uris = SplitUris(
        train=str(layout.channels["train"]),
        valid=str(layout.channels["validation"]),
        test=str(layout.channels["test"]),
        pipeline_model=str(bundle_file(layout.channels["pipeline"])),
    )
    threads = int(hps["threads"]) if "threads" in hps else os.cpu_count() or 1
    max_rows = int(hps["max_rows"]) if "max_rows" in hps else None
    layout.model_dir.mkdir(parents=True, exist_ok=True)
    job = Job(candidate, uris, str(layout.model_dir), seed, max_rows, threads)
    result = run_candidate(job)
    if result.ok:
        assert result.p_test is not None
        np.save(layout.model_dir / PREDICTIONS_FILE, result.p_test)
        model_uri = result.model_uri
        result.model_uri = (
            Path(model_uri).relative_to(layout.model_dir).as_posix() if model_uri is not None else None
        )
    (layout.model_dir / RESULT_FILE).write_text(
        json.dumps(result_document(result), indent=2, sort_keys=True, default=_json_default), encoding="utf-8"
    )
    return result


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """The job's program: 0 with the outputs written, 1 with the reason in `<output>/failure`."""
    from aik.logsetup import setup_logging

    del argv  # everything comes from the job's layout
    setup_logging()
    try:
        layout = JobLayout.from_env(env, CHANNELS)
    except AikError as exc:
        print(f"aik backtest job: {exc}", file=sys.stderr)
        return 1
    try:
        result = run_job(layout)
        reason = None if result.ok else result.error or "the candidate failed"
    except AikError as exc:
        reason = str(exc)
    if reason is not None:
        layout.output_dir.mkdir(parents=True, exist_ok=True)
        (layout.output_dir / "failure").write_text(reason, encoding="utf-8")
        print(f"aik backtest job: {reason}", file=sys.stderr)
        return 1
    log.info("candidate %s: AUC %s -> %s", result.name, result.metrics.get("auc"), layout.model_dir)
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
