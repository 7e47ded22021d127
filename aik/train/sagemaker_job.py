"""The cloud path: a SageMaker training job of the built-in XGBoost algorithm on the parquet splits.

The job reads the train and valid splits straight from S3 in Pipe mode (parquet streamed to the
container, label in the first column), shards the train channel by S3 key across instances, can run on
managed spot capacity with checkpoints in S3, and stops at a maximum run time. When it completes, its
`model.tar.gz` holds `xgboost-model`, which the 3.x containers save as UBJSON without feature names;
`booster_from_model_tar` adds the contract's feature names so the result is the same `xgboost.bin` a
local run publishes (then evaluated, gated and published the same way).

What the built-in algorithm cannot do: it builds a plain numeric matrix from parquet, so the index
columns cannot be categorical there; the job uses the `numeric` preset (or `original`), not the local
default (see docs/training.md for the quality difference).
"""

from __future__ import annotations

import io
import logging
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import xgboost as xgb

from aik import storage
from aik.errors import AikError, ArtifactError
from aik.params import bucket_root
from aik.schema import FEATURE_COLUMNS
from aik.train.model import load_booster
from aik.train.presets import TrainConfig

log = logging.getLogger(__name__)

#: The built-in algorithm's image version: XGBoost 3.0 (its model file is UBJSON, which current
#: xgboost loads; 1.7-1 saves the legacy binary format that xgboost 3.1+ can no longer read).
IMAGE_VERSION = "3.0-5"
CONTENT_TYPE = "application/x-parquet"
MODEL_FILE = "xgboost-model"

#: Our parameter names -> the built-in algorithm's (it validates names against its own list).
_RENAMES = {"reg_lambda": "lambda", "reg_alpha": "alpha"}
#: Parameters the built-in algorithm does not accept.
_UNSUPPORTED = ("max_cat_to_onehot", "max_cat_threshold", "nthread", "verbosity")


@dataclass(frozen=True)
class SageMakerJob:
    """Where and how the training job runs (CLI: --instance-type, --spot, --max-run, ...)."""

    #: Execution role ARN or name; None: the SageMaker config's default or the caller's role (Studio).
    role: str | None = None
    instance_type: str = "ml.m5.2xlarge"
    instance_count: int = 1
    volume_size_gb: int = 30
    max_run_s: int = 5400
    spot: bool = False
    #: With spot: how long to wait for capacity plus run time (must be >= max_run_s).
    max_wait_s: int = 7200
    image_version: str = IMAGE_VERSION
    base_job_name: str = "aik-xgboost"
    #: Under the data bucket: `<prefix>/output/` for model artifacts, `<prefix>/checkpoints/` for spot.
    prefix: str = "sagemaker/xgboost"


def hyperparameters(config: TrainConfig) -> dict[str, str]:
    """The built-in algorithm's hyperparameters (strings) for a numeric preset."""
    if config.categorical:
        raise AikError(
            f"preset {config.name!r} uses categorical index columns, which the SageMaker built-in "
            "XGBoost cannot read from parquet: use --preset numeric (the default with --sagemaker) "
            "or original"
        )
    out: dict[str, str] = {}
    for name, value in config.params.items():
        if name in _UNSUPPORTED:
            continue
        out[_RENAMES.get(name, name)] = str(value).lower() if isinstance(value, bool) else str(value)
    out["num_round"] = str(config.num_round)
    if config.early_stopping_rounds is not None:
        out["early_stopping_rounds"] = str(config.early_stopping_rounds)
    out["seed"] = str(config.seed)
    return out


def _s3_prefix(uri: str) -> str:
    if not storage.is_s3(uri):
        raise AikError(f"a SageMaker job reads from S3, but the split is at {uri} (use the aws backend)")
    return uri.replace("s3a://", "s3://", 1).rstrip("/") + "/"


def input_channels(train_uri: str, valid_uri: str) -> list[Any]:
    """The train (sharded by S3 key) and validation (replicated) channels: parquet in Pipe mode."""
    from sagemaker.core.training.configs import Channel, DataSource, S3DataSource

    def channel(name: str, uri: str, distribution: str) -> Channel:
        return Channel(
            channel_name=name,
            data_source=DataSource(
                s3_data_source=S3DataSource(
                    s3_data_type="S3Prefix", s3_uri=_s3_prefix(uri), s3_data_distribution_type=distribution
                )
            ),
            content_type=CONTENT_TYPE,
            input_mode="Pipe",
        )

    return [
        channel("train", train_uri, "ShardedByS3Key"),
        channel("validation", valid_uri, "FullyReplicated"),
    ]


def build_trainer(
    job: SageMakerJob,
    config: TrainConfig,
    *,
    train_uri: str,
    valid_uri: str,
    bucket_uri: str,
    region: str,
    session: Any = None,
) -> Any:
    """The `sagemaker.train.ModelTrainer` for the job (validates the role; submits nothing)."""
    from sagemaker.core import image_uris
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.training.configs import CheckpointConfig, Compute, OutputDataConfig, StoppingCondition
    from sagemaker.train import ModelTrainer

    if job.spot and job.max_wait_s < job.max_run_s:
        raise AikError(f"--max-wait ({job.max_wait_s} s) must be at least --max-run ({job.max_run_s} s)")
    root = _s3_prefix(bucket_root(bucket_uri)) + job.prefix.strip("/")
    if session is None:
        from aik import aws

        session = Session(boto_session=aws.session(region))
    trainer = ModelTrainer(
        sagemaker_session=session,
        role=job.role,
        base_job_name=job.base_job_name,
        training_image=image_uris.retrieve("xgboost", region, job.image_version),
        training_input_mode="Pipe",
        compute=Compute(
            instance_type=job.instance_type,
            instance_count=job.instance_count,
            volume_size_in_gb=job.volume_size_gb,
            enable_managed_spot_training=job.spot,
        ),
        stopping_condition=StoppingCondition(
            max_runtime_in_seconds=job.max_run_s,
            **({"max_wait_time_in_seconds": job.max_wait_s} if job.spot else {}),
        ),
        output_data_config=OutputDataConfig(s3_output_path=f"{root}/output/"),
        checkpoint_config=CheckpointConfig(s3_uri=f"{root}/checkpoints/{job.base_job_name}/")
        if job.spot
        else None,
        input_data_config=input_channels(train_uri, valid_uri),
        hyperparameters=hyperparameters(config),
    )
    return trainer


def run(trainer: Any) -> str:
    """Submit the job, follow its logs until it ends, and return the S3 URI of its model.tar.gz."""
    trainer.train(wait=True, logs=True)
    # `_latest_training_job` is how ModelTrainer's own docstring says to reach the finished job
    job = trainer._latest_training_job
    job.refresh()
    if job.training_job_status != "Completed":
        raise AikError(
            f"SageMaker training job {job.training_job_name} ended {job.training_job_status}: "
            f"{job.failure_reason}"
        )
    return str(job.model_artifacts.s3_model_artifacts)


def booster_from_model_tar(data: bytes, uri: str) -> xgb.Booster:
    """The booster in a job's model.tar.gz, with the contract's feature names (the built-in algorithm's
    model has none: its columns are numeric; the kit's image names them and keeps their types)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            member = next((m for m in tar.getmembers() if m.name.rsplit("/", 1)[-1] == MODEL_FILE), None)
            if member is None or not member.isfile():
                raise ArtifactError(uri, f"{MODEL_FILE} is not in the archive")
            extracted = tar.extractfile(member)
            assert extracted is not None
            model = extracted.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError(uri, f"not a model.tar.gz ({exc})") from exc
    booster = load_booster(model, f"{uri}#{MODEL_FILE}")
    if booster.num_features() != len(FEATURE_COLUMNS):
        raise ArtifactError(
            uri, f"the model has {booster.num_features()} features, expected {len(FEATURE_COLUMNS)}"
        )
    if booster.feature_names == list(FEATURE_COLUMNS):
        return booster  # the kit's image saves names and types (categorical ones too): keep them
    booster.feature_names = list(FEATURE_COLUMNS)
    booster.feature_types = ["q"] * len(FEATURE_COLUMNS)
    return booster


def summary(job: SageMakerJob, config: TrainConfig) -> Mapping[str, Any]:
    """What the job ran with (written into metrics.json)."""
    return {
        "image_version": job.image_version,
        "instance_type": job.instance_type,
        "instance_count": job.instance_count,
        "spot": job.spot,
        "max_run_s": job.max_run_s,
        "hyperparameters": hyperparameters(config),
    }
