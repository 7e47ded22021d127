"""The feature job on a transient EMR cluster: one cluster and one step definition for laptop and loop.

`aik --backend aws features --on emr` submits the cluster with the job as its only step and
`KeepJobFlowAliveWhenNoSteps` off, so EMR terminates it when the step ends; the retraining loop's state
machine (stacks/loop.py) creates the same cluster with Step Functions' `createCluster.sync`, runs the
same step with `addStep.sync` and terminates it with `terminateCluster.sync`. Both take the request
from `run_job_flow_request`, so the two cannot drift apart.

The cluster is the Studio product's, made transient: EMR 7 (Spark 3.5), the kit's bootstrap action
(Python 3.11, the pinned packages, the `aik` package from the bootstrap bucket), the kit's roles,
security configuration, private subnet and EMR-managed security groups, and an idle timeout as a
safety net should whoever submitted it never terminate it. The loop stack writes where all of these
are to the parameter `LOOP_EMR` (JSON), which the laptop reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from aik.errors import AikError
from aik.features.window import Window
from aik.params import ParameterStore

#: The parameter (written by the loop stack) naming the transient cluster's subnet, roles and groups.
LOOP_EMR = "/aik/loop/emr"
#: Key prefix of the kit's sources in the bootstrap bucket, the bootstrap script under it, and the
#: prefix of the cluster logs (the same keys as stacks/buckets.py deploys; a test keeps them equal).
BOOTSTRAP_PREFIX = "bootstrap/"
BOOTSTRAP_SCRIPT_KEY = f"{BOOTSTRAP_PREFIX}emr_bootstrap/install-python-packages.sh"
FEATURE_JOB_KEY = f"{BOOTSTRAP_PREFIX}aik/features/job.py"
EMR_LOG_PREFIX = "emr-logs/"
#: The interpreter of Spark's driver and executors (EMR 7 ships 3.9 as python3; the kit needs 3.11).
CLUSTER_PYTHON = "/usr/bin/python3.11"
#: Tags of every cluster the kit launches this way: AWS's EMR v2 managed policies act only on resources
#: with the first; the loop's state machine may describe and terminate only clusters with the second.
EMR_MANAGED_TAG = ("for-use-with-amazon-emr-managed-policies", "true")
COMPONENT_TAG = ("aik:component", "feature-job")
STEP_NAME = "aik-features"


@dataclass(frozen=True)
class EmrEnvironment:
    """Where the cluster runs and as whom: what the loop stack deployed (values or CDK tokens)."""

    subnet_id: str
    instance_profile: str
    service_role: str
    security_configuration: str
    bootstrap_bucket: str
    main_security_group: str
    core_security_group: str
    service_security_group: str

    @classmethod
    def from_json(cls, text: str, source: str = LOOP_EMR) -> EmrEnvironment:
        """Parse the parameter's value; a missing or extra key is a clear error naming `source`."""
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AikError(f"{source} is not JSON ({exc})") from exc
        names = {f.name for f in fields(cls)}
        if not isinstance(value, dict) or set(value) != names:
            got = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise AikError(f"{source} must be a JSON object with keys {sorted(names)}, got {got}")
        return cls(**{k: str(v) for k, v in value.items()})

    def to_json(self) -> str:
        """The parameter's value (what the stack writes)."""
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class ClusterSize:
    """The cluster's release and instances; the defaults are the Studio product's defaults."""

    release_label: str = "emr-7.13.0"
    main_instance_type: str = "m5.xlarge"
    core_instance_type: str = "m5.xlarge"
    core_instance_count: int = 2
    volume_gb: int = 64
    #: Seconds of idleness after which EMR terminates the cluster whatever happened to its submitter.
    idle_timeout_s: int = 900

    def __post_init__(self) -> None:
        if self.core_instance_count < 1:
            raise AikError(f"a cluster needs at least one core node, got {self.core_instance_count}")
        if not 60 <= self.idle_timeout_s <= 604_800:
            raise AikError(f"EMR accepts an idle timeout of 60 s to 7 days, got {self.idle_timeout_s} s")


def feature_step(
    env: EmrEnvironment,
    *,
    region: str,
    use_case: str,
    seed: int,
    action_on_failure: str,
    window: Window | None = None,
) -> dict[str, Any]:
    """The EMR step: spark-submit of the feature job (deployed in the bootstrap bucket) on the aws backend;
    with a `window`, the temporal split over its days (`--window-days N --test-days M`)."""
    window_args = (
        [] if window is None else ["--window-days", str(window.days), "--test-days", str(window.test_days)]
    )
    args = ["--backend", "aws", "--region", region, "--use-case", use_case, "--seed", str(seed), *window_args]
    return spark_submit_step(env, STEP_NAME, FEATURE_JOB_KEY, args, action_on_failure=action_on_failure)


def spark_submit_step(
    env: EmrEnvironment, name: str, script_key: str, args: list[str], *, action_on_failure: str
) -> dict[str, Any]:
    """An EMR step running `spark-submit` (client mode) of a script of the bootstrap bucket with `args`."""
    return {
        "Name": name,
        "ActionOnFailure": action_on_failure,
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": [
                "spark-submit",
                "--deploy-mode",
                "client",
                f"s3://{env.bootstrap_bucket}/{script_key}",
                *args,
            ],
        },
    }


def connect(params: ParameterStore, region: str | None) -> tuple[Any, EmrEnvironment, str]:
    """An EMR client of the region and the loop stack's environment (`LOOP_EMR`), for a laptop's command."""
    import boto3

    from aik.errors import ParameterNotFound

    try:
        environment = EmrEnvironment.from_json(params.get(LOOP_EMR))
    except ParameterNotFound as exc:
        raise AikError(f"{LOOP_EMR} is not set: deploy the aik/loop stack first") from exc
    session = boto3.Session(region_name=region)
    if not session.region_name:
        raise AikError("no AWS region: pass --region or set AWS_DEFAULT_REGION")
    return session.client("emr"), environment, session.region_name


def run_job_flow_request(
    env: EmrEnvironment,
    size: ClusterSize,
    *,
    name: str,
    keep_alive: bool,
    steps: list[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The RunJobFlow request (boto3 keyword arguments; also Step Functions' createCluster parameters)."""
    volume = {
        "EbsBlockDeviceConfigs": [
            {
                "VolumeSpecification": {"SizeInGB": size.volume_gb, "VolumeType": "gp3"},
                "VolumesPerInstance": 1,
            }
        ],
        "EbsOptimized": True,
    }
    python = {"PYSPARK_PYTHON": CLUSTER_PYTHON, "PYSPARK_DRIVER_PYTHON": CLUSTER_PYTHON}
    request: dict[str, Any] = {
        "Name": name,
        "ReleaseLabel": size.release_label,
        "Applications": [{"Name": "Spark"}],
        "LogUri": f"s3://{env.bootstrap_bucket}/{EMR_LOG_PREFIX}",
        "BootstrapActions": [
            {
                "Name": "install-python-packages",
                "ScriptBootstrapAction": {
                    "Path": f"s3://{env.bootstrap_bucket}/{BOOTSTRAP_SCRIPT_KEY}",
                    "Args": [f"s3://{env.bootstrap_bucket}/{BOOTSTRAP_PREFIX}"],
                },
            }
        ],
        "Configurations": [
            {
                "Classification": "spark-env",
                "Configurations": [{"Classification": "export", "Properties": python}],
            }
        ],
        "Instances": {
            "InstanceGroups": [
                {
                    "Name": "main",
                    "InstanceRole": "MASTER",
                    "Market": "ON_DEMAND",
                    "InstanceType": size.main_instance_type,
                    "InstanceCount": 1,
                    "EbsConfiguration": volume,
                },
                {
                    "Name": "core",
                    "InstanceRole": "CORE",
                    "Market": "ON_DEMAND",
                    "InstanceType": size.core_instance_type,
                    "InstanceCount": size.core_instance_count,
                    "EbsConfiguration": volume,
                },
            ],
            "Ec2SubnetId": env.subnet_id,
            "EmrManagedMasterSecurityGroup": env.main_security_group,
            "EmrManagedSlaveSecurityGroup": env.core_security_group,
            "ServiceAccessSecurityGroup": env.service_security_group,
            "KeepJobFlowAliveWhenNoSteps": keep_alive,
            "TerminationProtected": False,
        },
        "JobFlowRole": env.instance_profile,
        "ServiceRole": env.service_role,
        "SecurityConfiguration": env.security_configuration,
        "AutoTerminationPolicy": {"IdleTimeout": size.idle_timeout_s},
        "VisibleToAllUsers": True,
        "Tags": [{"Key": key, "Value": value} for key, value in (EMR_MANAGED_TAG, COMPONENT_TAG)],
    }
    if steps:
        request["Steps"] = list(steps)
    return request


@dataclass(frozen=True)
class Submitted:
    """A transient cluster running the feature job."""

    cluster_id: str
    step_id: str
    log_uri: str


def submit(
    emr: Any,
    env: EmrEnvironment,
    size: ClusterSize,
    *,
    region: str,
    use_case: str,
    seed: int,
    window: Window | None = None,
    name: str = "aik-features",
) -> Submitted:
    """Start a cluster that runs the feature job as its one step and terminates when it ends."""
    step = feature_step(
        env, region=region, use_case=use_case, seed=seed, action_on_failure="TERMINATE_CLUSTER", window=window
    )
    request = run_job_flow_request(env, size, name=name, keep_alive=False, steps=[step])
    cluster_id = emr.run_job_flow(**request)["JobFlowId"]
    steps = emr.list_steps(ClusterId=cluster_id)["Steps"]
    step_id = next(s["Id"] for s in steps if s["Name"] == STEP_NAME)
    return Submitted(cluster_id=cluster_id, step_id=step_id, log_uri=f"{request['LogUri']}{cluster_id}/")


def wait(emr: Any, submitted: Submitted, *, delay_s: int = 30, max_attempts: int = 240) -> None:
    """Wait for the step to end; a failed or cancelled step (or a wait that runs out) raises one line
    naming the step, the cluster, why, and where the logs are."""
    import botocore.exceptions

    try:
        emr.get_waiter("step_complete").wait(
            ClusterId=submitted.cluster_id,
            StepId=submitted.step_id,
            WaiterConfig={"Delay": delay_s, "MaxAttempts": max_attempts},
        )
    except botocore.exceptions.WaiterError as exc:
        step = emr.describe_step(ClusterId=submitted.cluster_id, StepId=submitted.step_id)["Step"]
        state = step["Status"]["State"]
        name = step.get("Name") or STEP_NAME
        named = f"step {submitted.step_id} ({name}) on EMR cluster {submitted.cluster_id}"
        if state not in ("FAILED", "CANCELLED"):
            raise AikError(
                f"{named} did not end within {delay_s * max_attempts} s (still {state}); it goes on, and "
                "`aws emr describe-step` follows it"
            ) from exc
        reason = _reason(step["Status"])
        if not reason:  # a step cancelled with its cluster: the cluster says why
            cluster = emr.describe_cluster(ClusterId=submitted.cluster_id)["Cluster"]["Status"]
            why = _reason(cluster)
            reason = f"the cluster is {cluster['State']}" + (f": {why}" if why else "")
        raise AikError(f"{named} ended {state}: {reason} (logs: {submitted.log_uri})") from exc


def _reason(status: Mapping[str, Any]) -> str:
    """The one-line reason of a step's or cluster's status (FailureDetails first, then StateChangeReason)."""
    failure = status.get("FailureDetails") or {}
    change = status.get("StateChangeReason") or {}
    text = failure.get("Reason") or failure.get("Message") or change.get("Message") or ""
    return " ".join(str(text).split())
