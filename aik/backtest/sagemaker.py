"""A backtest's candidates as parallel SageMaker training jobs (`aik --backend aws backtest --on sagemaker`).

One training job per candidate, all started at once, in the kit's pipeline image with
`python -m aik.backtest.job` as the entrypoint (the same `run_candidate` a local backtest runs), on the
splits and the MLeap bundle the parameters name, read as File-mode channels. Each job's outputs
(`model.tar.gz`: result, test predictions, model) go under the backtest's own prefix,
`<data bucket>/backtests/<id>/jobs/<job>/output/`. The client waits, logging every status change,
then reads each archive back, copies the model to `<id>/candidates/<name>/` (as a local backtest
writes it) and hands the results to the same report. A failed or stopped job becomes a failed
candidate with SageMaker's FailureReason; an interrupted wait stops the jobs still running.

Where the jobs run comes from the parameter `/aik/backtest/sagemaker` (JSON: `image_uri`, `role_arn`,
and `subnets` and `security_group_ids` when the jobs run in the VPC), which the `aik/loop` stack writes;
`--image` and `--role` override it. Only boto3 is used.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aik import storage
from aik.backtest import job as J
from aik.backtest.runner import CandidateResult, Job
from aik.errors import AikError
from aik.params import BACKTEST_JOB_PREFIX, BACKTEST_JOBS

log = logging.getLogger(__name__)

#: The parameter the `aik/loop` stack writes: where and as whom the backtest jobs run.
PARAMETER = BACKTEST_JOBS
#: Every backtest job's name starts with it (the IAM of the stacks is scoped to it).
JOB_PREFIX = BACKTEST_JOB_PREFIX
#: Under the backtest's directory: the jobs' own outputs.
JOBS_DIR = "jobs"
TERMINAL = ("Completed", "Failed", "Stopped")
_NAME_MAX = 63


@dataclass(frozen=True)
class JobsEnvironment:
    """What the stack provides: the image, the execution role, and the VPC when the jobs run in one."""

    image_uri: str
    role_arn: str
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, text: str, source: str = PARAMETER) -> JobsEnvironment:
        """Parse the parameter's value; a missing key or a malformed value names the parameter."""
        try:
            doc = json.loads(text)
            return cls(
                image_uri=str(doc["image_uri"]),
                role_arn=str(doc["role_arn"]),
                subnets=tuple(doc.get("subnets") or ()),
                security_group_ids=tuple(doc.get("security_group_ids") or ()),
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise AikError(f"{source} is not the JSON the aik/loop stack writes ({exc!r})") from exc


@dataclass(frozen=True)
class SageMakerBacktest:
    """How the jobs run (the CLI's SageMaker options)."""

    instance_type: str = "ml.m5.xlarge"
    volume_size_gb: int = 30
    max_run_s: int = 3600
    #: Seconds between two looks at the jobs' status.
    poll_s: float = 30.0
    #: Override the parameter's image / role.
    image_uri: str | None = None
    role: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


def environment(params: Any, settings: SageMakerBacktest) -> JobsEnvironment:
    """The jobs' environment: the parameter, with the CLI's overrides (both given: no parameter needed)."""
    if settings.image_uri and settings.role:
        return JobsEnvironment(image_uri=settings.image_uri, role_arn=settings.role)
    try:
        text = params.get(PARAMETER)
    except AikError as exc:
        raise AikError(
            f"{PARAMETER} is not set: deploy the aik/loop stack (it builds the kit's image), or pass "
            "--image and --role"
        ) from exc
    found = JobsEnvironment.from_json(text)
    return JobsEnvironment(
        image_uri=settings.image_uri or found.image_uri,
        role_arn=settings.role or found.role_arn,
        subnets=found.subnets,
        security_group_ids=found.security_group_ids,
    )


def job_name(backtest_id: str, index: int, candidate: str) -> str:
    """`aik-backtest-<id>-<n>-<candidate>`, cut to SageMaker's 63 characters of [a-zA-Z0-9-]."""
    stem = f"{JOB_PREFIX}-{backtest_id}-{index}"
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", candidate).strip("-")
    room = _NAME_MAX - len(stem) - 1
    return f"{stem}-{slug[:room].strip('-')}" if slug and room > 0 else stem


def _s3(uri: str) -> str:
    if not storage.is_s3(uri):
        raise AikError(f"a SageMaker job reads from S3, but {uri} is not an S3 URI (use --backend aws)")
    return uri.replace("s3a://", "s3://", 1)


def _tag(value: str) -> str:
    """A tag value with only the characters tags accept."""
    return re.sub(r"[^\w .:/=+\-@]", "_", value)[:256]


def training_job_request(
    job: Job, name: str, env: JobsEnvironment, settings: SageMakerBacktest, output_uri: str, backtest_id: str
) -> dict[str, Any]:
    """The CreateTrainingJob request of one candidate."""

    def channel(channel_name: str, uri: str, directory: bool) -> dict[str, Any]:
        prefix = _s3(uri).rstrip("/") + "/" if directory else _s3(uri)
        return {
            "ChannelName": channel_name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": prefix,
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "InputMode": "File",
        }

    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": env.role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": env.image_uri,
            "TrainingInputMode": "File",
            "ContainerEntrypoint": list(J.ENTRYPOINT),
        },
        "HyperParameters": J.hyperparameters(job.candidate.as_dict(), job.seed, job.max_rows, job.threads),
        "InputDataConfig": [
            channel("train", job.uris.train, True),
            channel("validation", job.uris.valid, True),
            channel("test", job.uris.test, True),
            channel("pipeline", job.uris.pipeline_model, False),
        ],
        "OutputDataConfig": {"S3OutputPath": _s3(output_uri).rstrip("/") + "/"},
        "ResourceConfig": {
            "InstanceType": settings.instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": settings.volume_size_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_run_s},
        "Tags": [
            {"Key": "aik:backtest", "Value": backtest_id},
            {"Key": "aik:candidate", "Value": _tag(job.candidate.name)},
            *({"Key": k, "Value": _tag(v)} for k, v in settings.tags.items()),
        ],
    }
    if env.subnets:
        request["VpcConfig"] = {
            "Subnets": list(env.subnets),
            "SecurityGroupIds": list(env.security_group_ids),
        }
    return request


def wait(
    sm: Any,
    names: Sequence[str],
    poll_s: float,
    on_end: Callable[[str, Mapping[str, Any]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Describe the jobs until every one has ended, logging each status change; name -> last description."""
    seen: dict[str, tuple[str, str]] = {}
    ended: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    while len(ended) < len(names):
        for name in names:
            if name in ended:
                continue
            described = sm.describe_training_job(TrainingJobName=name)
            state = (described["TrainingJobStatus"], described.get("SecondaryStatus", ""))
            if seen.get(name) != state:
                seen[name] = state
                log.info(
                    "backtest: %s %s/%s after %.0f s",
                    name,
                    *state,
                    time.monotonic() - started,
                )
            if state[0] in TERMINAL:
                ended[name] = described
                if on_end:
                    on_end(name, described)
        if len(ended) < len(names):
            log.info(
                "backtest: %d/%d jobs ended after %.0f s", len(ended), len(names), time.monotonic() - started
            )
            time.sleep(poll_s)
    return ended


def collect(job: Job, described: Mapping[str, Any], out_dir: str) -> CandidateResult:
    """The candidate's result from its ended job: read back from model.tar.gz, or the job's failure."""
    name = job.candidate.name
    status = described["TrainingJobStatus"]
    if status != "Completed":
        reason = described.get("FailureReason") or "no reason given"
        return CandidateResult(name=name, ok=False, error=f"SageMaker job {status}: {reason}")
    uri = described["ModelArtifacts"]["S3ModelArtifacts"]
    try:
        files = _members(storage.read_bytes(uri), uri)
        doc = json.loads(files[J.RESULT_FILE])
        p_test = np.load(io.BytesIO(files[J.PREDICTIONS_FILE]), allow_pickle=False)
        model_member = doc.get("model_uri")
        model_uri = None
        if model_member:
            model_uri = storage.join(out_dir, model_member)
            storage.write_bytes(model_uri, files[model_member])
    except (KeyError, ValueError, OSError, tarfile.TarError) as exc:
        return CandidateResult(name=name, ok=False, error=f"unreadable job output {uri}: {exc!r}")
    return J.read_result(doc, p_test, model_uri)


def _members(data: bytes, uri: str) -> dict[str, bytes]:
    """Every file of a model.tar.gz, by its path inside the archive."""
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                if extracted is None:
                    raise ValueError(f"{uri}: {member.name} cannot be read")
                out[member.name.removeprefix("./")] = extracted.read()
    return out


def run_jobs(
    sm: Any,
    jobs: Sequence[Job],
    *,
    backtest_id: str,
    directory: str,
    env: JobsEnvironment,
    settings: SageMakerBacktest,
    on_done: Callable[[CandidateResult], None] | None = None,
) -> list[CandidateResult]:
    """Start one training job per candidate, wait for all, and read their results (in the jobs' order)."""
    output_uri = storage.join(directory, JOBS_DIR)
    names = [job_name(backtest_id, i + 1, job.candidate.name) for i, job in enumerate(jobs)]
    by_name = dict(zip(names, jobs, strict=True))
    started: list[str] = []
    results: dict[str, CandidateResult] = {}

    def ended(name: str, described: Mapping[str, Any]) -> None:
        result = collect(by_name[name], described, directory)
        results[name] = result
        if on_done:
            on_done(result)

    try:
        for name, job in by_name.items():
            sm.create_training_job(**training_job_request(job, name, env, settings, output_uri, backtest_id))
            started.append(name)
            log.info("backtest: started %s (candidate %s)", name, job.candidate.name)
        wait(sm, started, settings.poll_s, ended)
    except BaseException:
        # nothing left running that nobody waits for (Ctrl-C, or a job that could not be created)
        for name in started:
            if name not in results:
                try:
                    sm.stop_training_job(TrainingJobName=name)
                    log.warning("backtest: stopped %s", name)
                except Exception as exc:  # already ended, or not ours to stop: say so and go on
                    log.warning("backtest: could not stop %s: %s", name, exc)
        raise
    return [results[name] for name in names]
