"""The SageMaker training job's program in the kit's image: the laptop's preset, on the job's channels.

SageMaker (a bring-your-own-container job) copies each input channel to `/opt/ml/input/data/<channel>/`
(File mode), writes the hyperparameters to `/opt/ml/input/config/hyperparameters.json` (every value a
string), runs the image's `train` program, and uploads `/opt/ml/model/` as `model.tar.gz` when it exits
0; on a non-zero exit, the text of `/opt/ml/output/failure` becomes the job's FailureReason. The
sagemaker-training toolkit's variables (`SM_CHANNEL_<NAME>`, `SM_MODEL_DIR`, `SM_OUTPUT_DIR`,
`SM_HPS`) override those paths when set, which is how the tests lay a job out in a temporary directory.

Channels: `train` and `validation` (the feature job's parquet splits) and `pipeline` (the MLeap bundle,
for the codes the server sends for unseen values). Hyperparameters: `preset` (default `default`, the
laptop's), `seed`, `threads`, and any `aik train --set` override (`num_round`, `max_depth`, ...).
Output: `xgboost-model` (UBJSON with the contract's feature names and types, read back by
`sagemaker_job.booster_from_model_tar`) and `training.json` (how it was trained).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aik.errors import AikError

log = logging.getLogger(__name__)

#: Where SageMaker puts things in a training container (the toolkit's variables override these).
OPT_ML = Path("/opt/ml")
CHANNELS = ("train", "validation", "pipeline")
#: Hyperparameters that set the run rather than xgboost (everything else is an `aik train --set` override).
RUN_SETTINGS = ("preset", "seed", "threads")
MODEL_FILE = "xgboost-model"
TRAINING_FILE = "training.json"


@dataclass(frozen=True)
class JobLayout:
    """The paths of one training job, from the environment (SageMaker's defaults otherwise)."""

    channels: Mapping[str, Path]
    model_dir: Path
    output_dir: Path
    hyperparameters: Mapping[str, str]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, channels: Sequence[str] = CHANNELS) -> JobLayout:
        """Channels, model and output directories and hyperparameters as SageMaker (or its toolkit) sets."""
        env = os.environ if env is None else env
        paths = {
            name: Path(env.get(f"SM_CHANNEL_{name.upper()}", str(OPT_ML / "input" / "data" / name)))
            for name in channels
        }
        if "SM_HPS" in env:
            raw = env["SM_HPS"]
            where = "SM_HPS"
        else:
            path = OPT_ML / "input" / "config" / "hyperparameters.json"
            raw = path.read_text(encoding="utf-8") if path.exists() else "{}"
            where = str(path)
        try:
            hyperparameters = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise AikError(f"hyperparameters in {where} are not JSON ({exc})") from exc
        if not isinstance(hyperparameters, dict):
            raise AikError(f"hyperparameters in {where} are not a JSON object")
        return cls(
            channels=paths,
            model_dir=Path(env.get("SM_MODEL_DIR", str(OPT_ML / "model"))),
            output_dir=Path(env.get("SM_OUTPUT_DIR", str(OPT_ML / "output"))),
            hyperparameters={str(k): str(v) for k, v in hyperparameters.items()},
        )


def bundle_file(channel: Path) -> Path:
    """The MLeap bundle (the one `.zip`) in the `pipeline` channel."""
    zips = sorted(channel.rglob("*.zip")) if channel.is_dir() else []
    if len(zips) != 1:
        raise AikError(
            f"the pipeline channel {channel} must hold exactly one MLeap bundle (.zip), found {len(zips)}"
        )
    return zips[0]


def train_job(layout: JobLayout) -> dict[str, Any]:
    """Train on the job's channels and write the model into the model directory; returns training.json."""
    from aik.bundle import read_bundle
    from aik.schema import INDEXED_COLUMNS
    from aik.train.data import check_codes, read_split
    from aik.train.model import model_bytes, train_booster
    from aik.train.presets import CATEGORICAL_COLUMNS, parse_overrides, resolve

    hps = layout.hyperparameters
    seed = int(hps.get("seed", "0"))
    threads = int(hps["threads"]) if "threads" in hps else None
    overrides = parse_overrides([f"{k}={v}" for k, v in hps.items() if k not in RUN_SETTINGS])
    config = resolve(hps.get("preset", "default"), overrides, seed=seed)
    for name in ("train", "validation"):
        if not layout.channels[name].is_dir():
            raise AikError(f"the {name} channel {layout.channels[name]} is missing")
    train = read_split(str(layout.channels["train"]), seed=seed, label="train")
    valid = read_split(str(layout.channels["validation"]), seed=seed + 1, label="valid")
    if config.categorical:
        for split in (train, valid):
            check_codes(split, CATEGORICAL_COLUMNS)
    indexer = read_bundle(str(bundle_file(layout.channels["pipeline"])))
    unseen = {out: len(indexer.labels[raw]) for raw, out in INDEXED_COLUMNS.items() if raw in indexer.labels}
    trained = train_booster(train, valid, config, unseen_codes=unseen, nthread=threads)
    layout.model_dir.mkdir(parents=True, exist_ok=True)
    (layout.model_dir / MODEL_FILE).write_bytes(model_bytes(trained.booster))
    info = {
        "source": "sagemaker-kit-image",
        "preset": config.as_dict(),
        "train_rows": train.rows,
        "valid_rows": valid.rows,
        "best_rounds": trained.best_rounds,
        "rounds": trained.rounds,
        "refit_on_train_and_valid": trained.refit,
        "unseen_rows_added": trained.unseen_rows,
        "train_seconds": round(trained.seconds, 2),
    }
    (layout.model_dir / TRAINING_FILE).write_text(
        json.dumps(info, indent=2, sort_keys=True), encoding="utf-8"
    )
    return info


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """The image's `train` program: 0 with the model written, 1 with the reason in `<output>/failure`."""
    from aik.logsetup import setup_logging

    del argv  # SageMaker runs `train` with no arguments; everything comes from the job's layout
    setup_logging()
    try:
        layout = JobLayout.from_env(env)
    except AikError as exc:
        print(f"aik training job: {exc}", file=sys.stderr)
        return 1
    try:
        info = train_job(layout)
    except AikError as exc:
        reason = str(exc)
        layout.output_dir.mkdir(parents=True, exist_ok=True)
        (layout.output_dir / "failure").write_text(reason, encoding="utf-8")
        print(f"aik training job: {reason}", file=sys.stderr)
        return 1
    log.info("trained %s: %d rounds -> %s", info["preset"]["preset"], info["rounds"], layout.model_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
