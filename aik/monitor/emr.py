"""The monitor's join job as an EMR step: on a running cluster, or on a transient one like the feature job's.

`aik --backend aws monitor --on emr` adds the step with boto3 to the cluster named by `--cluster-id`
(a cluster of the Studio product, say; `ActionOnFailure` CONTINUE, so a failed join leaves the cluster
to its owner), or without it starts the loop's transient cluster (`aik.features.emr_job`'s request,
from the `/aik/loop/emr` parameter) with the step as its only one, which ends with it. Either way it
waits with a progress line per state change, then the report is built from the table the step wrote
to S3. The job's file is the one the kit deploys to the bootstrap bucket with the rest of `aik/`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from aik.errors import AikError
from aik.features import emr_job
from aik.monitor.spark_job import JoinJob

log = logging.getLogger("aik.monitor")

#: The job's key in the bootstrap bucket (stacks/buckets.py deploys `aik/**` under `bootstrap/`).
MONITOR_JOB_KEY = f"{emr_job.BOOTSTRAP_PREFIX}aik/monitor/spark_job.py"
STEP_NAME = "aik-monitor"
COMPONENT_TAG = ("aik:component", "monitor-job")
#: States after which a step does not change any more.
DONE_STATES = ("COMPLETED", "CANCELLED", "FAILED", "INTERRUPTED")


def monitor_step(
    env: emr_job.EmrEnvironment, join: JoinJob, *, region: str, action_on_failure: str
) -> dict[str, Any]:
    """The EMR step: spark-submit of the join job (deployed in the bootstrap bucket) on explicit URIs."""
    optional: list[str] = []
    if join.experiment is not None:
        optional += ["--experiment", join.experiment]
    if join.start is not None:
        optional += ["--start", join.start.isoformat()]
    if join.end is not None:
        optional += ["--end", join.end.isoformat()]
    args = ["--predictions", join.predictions, "--logs", join.logs, "--out", join.out, "--region", region]
    return emr_job.spark_submit_step(
        env, STEP_NAME, MONITOR_JOB_KEY, [*args, *optional], action_on_failure=action_on_failure
    )


def add_to_cluster(
    emr: Any, env: emr_job.EmrEnvironment, join: JoinJob, *, cluster_id: str, region: str
) -> emr_job.Submitted:
    """Add the step to a running cluster (it must be able to take steps: WAITING or RUNNING)."""
    import botocore.exceptions

    step = monitor_step(env, join, region=region, action_on_failure="CONTINUE")
    try:
        cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
        (step_id,) = emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=[step])["StepIds"]
    except botocore.exceptions.ClientError as exc:
        raise AikError(f"cannot add the step to EMR cluster {cluster_id}: {exc}") from exc
    log_uri = str(cluster.get("LogUri") or "")
    return emr_job.Submitted(cluster_id, step_id, f"{log_uri.rstrip('/')}/{cluster_id}/" if log_uri else "")


def submit_transient(
    emr: Any, env: emr_job.EmrEnvironment, size: emr_job.ClusterSize, join: JoinJob, *, region: str
) -> emr_job.Submitted:
    """Start the loop's transient cluster with the step as its only one (it terminates when the step ends)."""
    step = monitor_step(env, join, region=region, action_on_failure="TERMINATE_CLUSTER")
    request = emr_job.run_job_flow_request(env, size, name=STEP_NAME, keep_alive=False, steps=[step])
    request["Tags"] = [{"Key": k, "Value": v} for k, v in (emr_job.EMR_MANAGED_TAG, COMPONENT_TAG)]
    cluster_id = emr.run_job_flow(**request)["JobFlowId"]
    step_id = next(s["Id"] for s in emr.list_steps(ClusterId=cluster_id)["Steps"] if s["Name"] == STEP_NAME)
    return emr_job.Submitted(cluster_id, step_id, f"{request['LogUri']}{cluster_id}/")


def wait_with_progress(
    emr: Any,
    submitted: emr_job.Submitted,
    *,
    delay_s: float = 30.0,
    timeout_s: float = 4 * 3600.0,
    report: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll the step until it ends, reporting each state change with the time since submission; a step
    that does not complete raises one line naming it, why, and where its logs are."""
    started = time.monotonic()
    last = None
    while True:
        step = emr.describe_step(ClusterId=submitted.cluster_id, StepId=submitted.step_id)["Step"]
        state = step["Status"]["State"]
        if state != last:
            elapsed = time.monotonic() - started
            report(f"monitor: step {submitted.step_id} ({submitted.cluster_id}): {state}, {elapsed:.0f} s")
            last = state
        if state == "COMPLETED":
            return
        named = f"step {submitted.step_id} ({STEP_NAME}) on EMR cluster {submitted.cluster_id}"
        if state in DONE_STATES:
            reason = emr_job._reason(step["Status"]) or "no reason given"
            raise AikError(
                f"{named} ended {state}: {reason} (logs: {submitted.log_uri or 'the cluster has no log URI'})"
            )
        if time.monotonic() - started > timeout_s:
            raise AikError(
                f"{named} did not end within {timeout_s:.0f} s (still {state}); it goes on, and "
                "`aws emr describe-step` follows it"
            )
        sleep(delay_s)
