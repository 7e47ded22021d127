"""Properties of `aik/loop`: the retraining loop's schedule, state machine, transient EMR, IAM and alarm."""

from __future__ import annotations

import importlib.util
import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match
from cdk_helpers import Synthesized

from aik import params
from aik.features import emr_job
from stacks import buckets, emr_product, loop, network

# --- reading the state machine ----------------------------------------------------------------------


def _flat(value: Any) -> str:
    """A template value as text, every intrinsic other than Fn::Join as a quote-free `<...>` placeholder."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return delimiter.join(_flat(p) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "<" + ".".join(value["Fn::GetAtt"]) + ">"
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        return "<sub " + value["Fn::Sub"].replace("${", "{") + ">"
    if isinstance(value, dict) and "Fn::GetStackOutput" in value:
        reference = value["Fn::GetStackOutput"]
        return f"<output {reference['StackName']} {reference['OutputName']}>"
    return "<" + next(iter(value)) + ">"


def _resources(synth: Synthesized, kind: str) -> dict[str, dict[str, Any]]:
    return synth.resources("loop", kind)


def _definition(synth: Synthesized) -> dict[str, Any]:
    (machine,) = _resources(synth, "AWS::StepFunctions::StateMachine").values()
    return json.loads(_flat(machine["Properties"]["DefinitionString"]))


def _states(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return _definition(synth)["States"]


def _logical_id(synth: Synthesized, kind: str, path_part: str) -> str:
    (logical_id,) = [
        lid
        for lid, r in synth.templates["loop"]["Resources"].items()
        if r["Type"] == kind and path_part in r.get("Metadata", {}).get("aws:cdk:path", lid)
    ]
    return logical_id


def _reachable(states: dict[str, dict[str, Any]], start: str) -> list[str]:
    """Every state reachable from `start` through Next and Catch, in visiting order."""
    seen: list[str] = []
    todo = [start]
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.append(name)
        state = states[name]
        todo += [state["Next"]] if "Next" in state else []
        todo += [c["Next"] for c in state.get("Catch", [])]
    return seen


# --- the states ----------------------------------------------------------------------------------


def test_a_successful_run_passes_the_steps_in_order(synth: Synthesized) -> None:
    definition = _definition(synth)
    path, name = [], definition["StartAt"]
    while "Next" in definition["States"][name]:
        path.append(name)
        name = definition["States"][name]["Next"]
    assert path == ["Prepare", *loop.STEPS]
    assert definition["States"][name]["Type"] == "Succeed"


def test_the_steps_use_the_sync_integrations(synth: Synthesized) -> None:
    resources = {name: s.get("Resource", "") for name, s in _states(synth).items()}
    assert resources["IngestNewDays"].endswith(":states:::sagemaker:createProcessingJob.sync")
    assert resources["CreateCluster"].endswith(":states:::elasticmapreduce:createCluster.sync")
    assert resources["RunFeatureJob"].endswith(":states:::elasticmapreduce:addStep.sync")
    assert resources["TerminateCluster"].endswith(":states:::elasticmapreduce:terminateCluster.sync")
    assert resources["TrainModel"].endswith(":states:::sagemaker:createTrainingJob.sync")
    assert resources["EvaluateGateAndPublish"].endswith(":states:::sagemaker:createProcessingJob.sync")


def test_every_task_up_to_the_publish_catches_every_error_and_ends_in_the_notification(
    synth: Synthesized,
) -> None:
    states = _states(synth)
    after_publish = {*loop.AFTER_PUBLISH, "NotifyPublishedWithWarning"}
    for name, state in states.items():
        if state["Type"] != "Task" or name == "NotifyFailure" or name in after_publish:
            continue
        (catch,) = state["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"], name
        after = _reachable(states, catch["Next"])
        assert "NotifyFailure" in after, name
        assert all(states[s]["Type"] != "Succeed" for s in after), name


def test_the_notification_names_the_failed_step(synth: Synthesized) -> None:
    states = _states(synth)
    for step in loop.STEPS:
        failed = states[states[step]["Catch"][0]["Next"]]
        if step == "RunFeatureJob":  # the cluster is terminated first
            failed = states[failed["Next"]]
        assert failed["Parameters"]["step"] == step


def test_a_failed_count_after_the_publish_warns_and_the_run_succeeds(synth: Synthesized) -> None:
    # the pointer was switched by the publish: the release is live, so the run is not a failure
    states = _states(synth)
    for step in loop.AFTER_PUBLISH:
        (catch,) = states[step]["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"]
        after = _reachable(states, catch["Next"])
        assert "NotifyFailure" not in after and "Failed" not in after
        assert after[-1] == "Published" and states["Published"]["Type"] == "Succeed"
    warn = states["NotifyPublishedWithWarning"]
    assert warn["Resource"].endswith(":states:::sns:publish")
    assert "published a new live release" in warn["Parameters"]["Message.$"]
    assert warn["Next"] == "Published" and warn["Catch"][0]["Next"] == "Published"


def test_a_failed_run_ends_failed_after_notifying_the_loops_topic(synth: Synthesized) -> None:
    states = _states(synth)
    notify = states["NotifyFailure"]
    assert notify["Resource"].endswith(":states:::sns:publish")
    topic = _logical_id(synth, "AWS::SNS::Topic", "Notifications")
    assert notify["Parameters"]["TopicArn"] == f"<{topic}>"
    assert states[notify["Next"]]["Type"] == "Fail"


def test_the_live_release_changes_only_in_the_publish_step(synth: Synthesized) -> None:
    # Only the kit's own gated publish (aik train) writes what the servers load; every state before it
    # is the feature job, the cluster and the training job, and a failure anywhere skips the publish.
    states = _states(synth)
    for name in ("IngestNewDays", "CreateCluster", "RunFeatureJob", "TerminateCluster", "TrainModel"):
        assert "EvaluateGateAndPublish" not in _reachable(states, states[name]["Catch"][0]["Next"])
    assert "ssm:putParameter" not in json.dumps(states)


# --- transient compute ------------------------------------------------------------------------------


def test_a_failed_feature_job_still_terminates_the_cluster(synth: Synthesized) -> None:
    states = _states(synth)
    after_failure = states[states["RunFeatureJob"]["Catch"][0]["Next"]]
    assert after_failure["Resource"].endswith(":states:::elasticmapreduce:terminateCluster.sync")
    assert after_failure["Parameters"] == {"ClusterId.$": "$.cluster.ClusterId"}


def test_the_cluster_ends_by_itself_if_the_execution_dies(synth: Synthesized) -> None:
    request = _states(synth)["CreateCluster"]["Parameters"]
    assert request["AutoTerminationPolicy"]["IdleTimeout"] == emr_job.ClusterSize().idle_timeout_s
    assert request["Instances"]["TerminationProtected"] is False


def test_the_cluster_is_the_one_the_laptop_submits(synth: Synthesized) -> None:
    placeholder = re.compile(r"<[^<>]*>")
    env = emr_job.EmrEnvironment(**{name: "<x>" for name in emr_job.EmrEnvironment.__dataclass_fields__})
    expected = emr_job.run_job_flow_request(
        env, emr_job.ClusterSize(), name="aik-loop-features", keep_alive=True
    )
    created = json.loads(placeholder.sub("<x>", json.dumps(_states(synth)["CreateCluster"]["Parameters"])))
    assert created == expected


def test_the_feature_step_is_the_one_the_laptop_submits(synth: Synthesized) -> None:
    step = _states(synth)["RunFeatureJob"]["Parameters"]["Step"]
    args = step["HadoopJarStep"]["Args"]
    assert args[:3] == ["spark-submit", "--deploy-mode", "client"]
    assert args[3].endswith("/" + emr_job.FEATURE_JOB_KEY)
    assert args[4:8] == ["--backend", "aws", "--region", "<AWS::Region>"]
    assert step["ActionOnFailure"] == "CONTINUE"  # the state machine terminates the cluster itself


def test_the_feature_job_runs_on_the_default_sliding_window(synth: Synthesized) -> None:
    args = _states(synth)["RunFeatureJob"]["Parameters"]["Step"]["HadoopJarStep"]["Args"]
    settings = loop.LoopSettings()
    assert (settings.window_days, settings.test_days) == (7, 1)  # the local `aik pipeline run` defaults
    assert args[-4:] == ["--window-days", "7", "--test-days", "1"]


def test_the_window_is_a_setting(variant: Synthesized) -> None:
    args = _states(variant)["RunFeatureJob"]["Parameters"]["Step"]["HadoopJarStep"]["Args"]
    assert args[-4:] == ["--window-days", "14", "--test-days", "2"]


def test_new_days_are_ingested_first_by_the_kits_own_ingest(synth: Synthesized) -> None:
    definition = _definition(synth)
    assert definition["States"]["Prepare"]["Next"] == "IngestNewDays"
    job = definition["States"]["IngestNewDays"]["Parameters"]
    publish = definition["States"]["EvaluateGateAndPublish"]["Parameters"]
    assert job["AppSpecification"]["ImageUri"] == publish["AppSpecification"]["ImageUri"]
    assert job["RoleArn"] == publish["RoleArn"]
    entrypoint = job["AppSpecification"]["ContainerEntrypoint"]
    assert entrypoint[:5] == ["aik", "--backend", "aws", "--region", "<AWS::Region>"]
    assert entrypoint[5:7] == ["ingest", "--from"]  # appends the days not ingested yet (no --replace)
    assert re.fullmatch(r"s3://<output aik-sagemaker-emr [^<>]+>/incoming/", entrypoint[7])
    assert job["ProcessingJobName.$"] == f"States.Format('{loop.JOB_PREFIX}-ingest-{{}}', $.run.id)"


def test_the_ingest_prefix_is_a_setting(variant: Synthesized) -> None:
    entrypoint = _states(variant)["IngestNewDays"]["Parameters"]["AppSpecification"]["ContainerEntrypoint"]
    assert entrypoint[-1].endswith("/landing/ipinyou/")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"window_days": 0}, "at least one training and one test day"),
        ({"test_days": 0}, "at least one training and one test day"),
        ({"ingest_prefix": "incoming"}, "ending in /"),
        ({"ingest_prefix": loop.RAW_PREFIX + "new/"}, "outside raw/ipinyou-data/"),
    ],
)
def test_a_window_or_prefix_the_loop_cannot_use_is_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        loop.LoopSettings(**settings)


# --- the SageMaker jobs' network -------------------------------------------------------------------


def _private_subnets(synth: Synthesized) -> list[str]:
    """The VPC's private subnets as the loop stack refers to them."""
    (parameter,) = [
        p["Properties"]
        for p in _resources(synth, "AWS::SSM::Parameter").values()
        if p["Properties"]["Name"] == emr_job.LOOP_EMR
    ]
    emr_subnet = json.loads(_flat(parameter["Value"]))["subnet_id"]  # the first private subnet
    subnets = _states(synth)["TrainModel"]["Parameters"]["VpcConfig"]["Subnets"]
    assert subnets[0] == emr_subnet
    return subnets


def test_the_sagemaker_jobs_run_in_the_private_subnets_with_the_jobs_group(synth: Synthesized) -> None:
    states = _states(synth)
    group = _logical_id(synth, "AWS::EC2::SecurityGroup", "JobSecurityGroup")
    expected = {"SecurityGroupIds": [f"<{group}.GroupId>"], "Subnets": _private_subnets(synth)}
    assert len(expected["Subnets"]) == 2  # one per AZ
    assert all(s.startswith("<output aik-sagemaker-emr ") for s in expected["Subnets"])
    assert states["TrainModel"]["Parameters"]["VpcConfig"] == expected
    for name in ("IngestNewDays", "EvaluateGateAndPublish"):
        assert states[name]["Parameters"]["NetworkConfig"] == {"VpcConfig": expected}, name


def test_the_jobs_group_admits_nothing_and_lets_only_https_out(synth: Synthesized) -> None:
    group = _resources(synth, "AWS::EC2::SecurityGroup")[
        _logical_id(synth, "AWS::EC2::SecurityGroup", "JobSecurityGroup")
    ]["Properties"]
    assert "SecurityGroupIngress" not in group
    assert not [
        r
        for r in _resources(synth, "AWS::EC2::SecurityGroupIngress").values()
        if "JobSecurityGroup" in json.dumps(r)
    ]
    (egress,) = group["SecurityGroupEgress"]
    assert (egress["IpProtocol"], egress["FromPort"], egress["ToPort"]) == ("tcp", 443, 443)


def test_the_job_role_makes_network_interfaces_only_in_the_loops_subnets(synth: Synthesized) -> None:
    subnets = {
        f"arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:subnet/{s}" for s in _private_subnets(synth)
    }
    statements = {s.get("Sid"): s for s in _statements(synth)}
    inputs = statements["JobNetworkInterfaceInputs"]
    assert _actions(inputs) == ["ec2:CreateNetworkInterface"]
    group = _logical_id(synth, "AWS::EC2::SecurityGroup", "JobSecurityGroup")
    assert {_flat(r) for r in inputs["Resource"]} == {
        *subnets,
        f"arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:security-group/<{group}.GroupId>",
    }
    interfaces = statements["JobNetworkInterfaces"]
    assert _flat(interfaces["Resource"]).endswith(":network-interface/*")
    assert {_flat(a) for a in interfaces["Condition"]["ArnEquals"]["ec2:Subnet"]} == subnets


def test_the_cluster_runs_in_the_loops_groups_and_the_kits_subnet(synth: Synthesized) -> None:
    instances = _states(synth)["CreateCluster"]["Parameters"]["Instances"]
    groups = _resources(synth, "AWS::EC2::SecurityGroup")
    assert instances["EmrManagedMasterSecurityGroup"].removeprefix("<").split(".")[0] in groups
    assert instances["EmrManagedSlaveSecurityGroup"].removeprefix("<").split(".")[0] in groups
    assert instances["ServiceAccessSecurityGroup"].removeprefix("<").split(".")[0] in groups
    assert instances["Ec2SubnetId"].startswith("<output aik-sagemaker-emr ")


def test_the_clusters_groups_are_tagged_for_emrs_managed_policy(synth: Synthesized) -> None:
    groups = _resources(synth, "AWS::EC2::SecurityGroup")
    emr_groups = [g for lid, g in groups.items() if "EmrGroups" in lid]
    assert len(emr_groups) == 3
    for group in emr_groups:
        tags = {t["Key"]: t["Value"] for t in group["Properties"]["Tags"]}
        assert tags[network.EMR_MANAGED_TAG[0]] == network.EMR_MANAGED_TAG[1]


def test_the_laptop_finds_the_cluster_environment_in_a_parameter(synth: Synthesized) -> None:
    (parameter,) = [
        p["Properties"]
        for p in _resources(synth, "AWS::SSM::Parameter").values()
        if p["Properties"]["Name"] == emr_job.LOOP_EMR
    ]
    value = json.loads(_flat(parameter["Value"]))
    assert set(value) == set(emr_job.EmrEnvironment.__dataclass_fields__)


def test_the_job_keys_agree_with_what_the_stacks_deploy() -> None:
    assert emr_job.BOOTSTRAP_PREFIX == buckets.BOOTSTRAP_PREFIX
    assert emr_job.BOOTSTRAP_SCRIPT_KEY == buckets.BOOTSTRAP_SCRIPT_KEY
    assert emr_job.EMR_LOG_PREFIX == buckets.EMR_LOG_PREFIX
    assert emr_job.EMR_MANAGED_TAG == network.EMR_MANAGED_TAG
    assert emr_job.CLUSTER_PYTHON == emr_product.CLUSTER_PYTHON
    assert emr_job.ClusterSize().release_label in emr_product.EMR_RELEASES
    # the step runs the feature job from the deployed sources: aik/** is deployed under bootstrap/
    assert "aik/**" in buckets.BOOTSTRAP_SOURCES
    assert emr_job.FEATURE_JOB_KEY == emr_job.BOOTSTRAP_PREFIX + "aik/features/job.py"


# --- training and publishing --------------------------------------------------------------------------


def test_training_runs_the_kits_image_and_its_default_preset(synth: Synthesized) -> None:
    job = _states(synth)["TrainModel"]["Parameters"]
    assert "container-assets" in job["AlgorithmSpecification"]["TrainingImage"]
    assert job["HyperParameters"]["preset"] == "default"
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
    assert set(channels) == {"train", "validation", "pipeline"}
    assert channels["train"].endswith("/" + params.DERIVED_KEYS[params.OUTPUT_TRAIN])
    assert channels["validation"].endswith("/" + params.DERIVED_KEYS[params.OUTPUT_VALID])
    assert channels["pipeline"].endswith("/" + params.DERIVED_KEYS[params.PIPELINE_MODEL])


def test_publishing_runs_aik_train_on_the_trained_model(synth: Synthesized) -> None:
    states = _states(synth)
    app = states["EvaluateGateAndPublish"]["Parameters"]["AppSpecification"]
    assert app["ImageUri"] == states["TrainModel"]["Parameters"]["AlgorithmSpecification"]["TrainingImage"]
    assert app["ContainerEntrypoint"][:3] == ["aik", "--backend", "aws"]
    assert app["ContainerEntrypoint"][-1] == "train"
    assert app["ContainerArguments.$"] == "States.Array('--model-uri', $.training.ModelArtifacts)"
    assert states["TrainModel"]["ResultSelector"] == {"ModelArtifacts.$": "$.ModelArtifacts.S3ModelArtifacts"}


def test_the_image_has_the_training_program_sagemaker_runs() -> None:
    dockerfile = (loop.REPO_ROOT / loop.PIPELINE_DOCKERFILE).read_text()
    (module,) = re.findall(r"exec python -m ([\w.]+)", dockerfile)
    assert "/usr/local/bin/train" in dockerfile
    assert importlib.util.find_spec(module) is not None


def test_the_image_context_holds_what_the_dockerfile_copies(synth: Synthesized) -> None:
    manifest = json.loads(next(synth.assembly_dir.glob("assembly-*/*loop*.assets.json")).read_text())
    (image,) = manifest["dockerImages"].values()
    context = next(synth.assembly_dir.glob("assembly-*")) / image["source"]["directory"]
    assert image["source"]["dockerFile"] == loop.PIPELINE_DOCKERFILE
    copies = re.findall(
        r"^COPY\s+(.+)\s+\S+$", (context / loop.PIPELINE_DOCKERFILE).read_text(), re.MULTILINE
    )
    sources = [source for line in copies for source in line.split()]
    assert sources and all((context / source).exists() for source in sources)
    assert {p.relative_to(context).parts[0] for p in context.rglob("*") if p.is_file()} <= {
        ".dockerignore",
        "pyproject.toml",
        "README.md",
        "aik",
    }


# --- schedule and alarm ----------------------------------------------------------------------------


def _schedule(synth: Synthesized) -> dict[str, Any]:
    (schedule,) = _resources(synth, "AWS::Scheduler::Schedule").values()
    return schedule["Properties"]


def test_the_schedule_is_off_by_default(synth: Synthesized) -> None:
    assert _schedule(synth)["State"] == "DISABLED"


def test_the_context_switch_turns_the_schedule_on(variant: Synthesized) -> None:
    assert _schedule(variant)["State"] == "ENABLED"


def test_the_schedule_starts_the_state_machine(synth: Synthesized) -> None:
    target = _schedule(synth)["Target"]
    machine = _logical_id(synth, "AWS::StepFunctions::StateMachine", "StateMachine")
    assert target["Arn"] == {"Ref": machine}
    role = target["RoleArn"]["Fn::GetAtt"][0]
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in _resources(synth, "AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
    ]
    assert policy == [{"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": machine}}]


def test_the_staleness_alarm_fires_after_the_max_age_without_a_publish(synth: Synthesized) -> None:
    states = _states(synth)
    counted = states["CountPublish"]["Parameters"]
    synth.template("loop").has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": counted["Namespace"],
            "MetricName": counted["MetricData"][0]["MetricName"],
            "Statistic": "Sum",
            "Period": 3600,
            "EvaluationPeriods": 48,
            "DatapointsToAlarm": 48,
            "Threshold": 1,
            "ComparisonOperator": "LessThanThreshold",
            "TreatMissingData": "breaching",
            "AlarmActions": [{"Ref": _logical_id(synth, "AWS::SNS::Topic", "Notifications")}],
        },
    )


def test_the_max_age_is_a_setting(variant: Synthesized) -> None:
    variant.template("loop").has_resource_properties(
        "AWS::CloudWatch::Alarm", {"EvaluationPeriods": 24, "DatapointsToAlarm": 24}
    )


# --- IAM -----------------------------------------------------------------------------------------


def _statements(synth: Synthesized) -> list[dict[str, Any]]:
    return [
        s
        for p in _resources(synth, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


#: Actions with no resource-level permissions that the loop needs unconditionally: the registry login
#: before pulling the pipeline image (the pull itself is limited to the asset repository), and the
#: state machine's log delivery and X-Ray tracing (what sfn.StateMachine grants for `logs` and tracing).
UNSCOPABLE = {
    "ecr:GetAuthorizationToken",
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:UpdateLogDelivery",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
    # what SageMaker calls to place a job's network interfaces in the VPC
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
}


def test_no_wildcard_resource_is_granted_without_a_condition(synth: Synthesized) -> None:
    for statement in _statements(synth):
        if statement["Resource"] == "*" and "Condition" not in statement:
            assert set(_actions(statement)) <= UNSCOPABLE, statement


def test_clusters_are_created_and_used_only_with_the_kits_tag(synth: Synthesized) -> None:
    key = emr_job.COMPONENT_TAG[0]
    emr_statements = [
        s for s in _statements(synth) if any(a.startswith("elasticmapreduce:") for a in _actions(s))
    ]
    assert emr_statements
    for statement in emr_statements:
        (condition,) = statement["Condition"]["StringEquals"].items()
        assert condition in (
            (f"elasticmapreduce:RequestTag/{key}", emr_job.COMPONENT_TAG[1]),
            (f"elasticmapreduce:ResourceTag/{key}", emr_job.COMPONENT_TAG[1]),
        )


def test_sagemaker_calls_are_limited_to_the_loops_and_the_backtests_jobs(synth: Synthesized) -> None:
    for statement in _statements(synth):
        if any(a.startswith("sagemaker:") for a in _actions(statement)):
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            assert all(
                re.search(r":((training|processing)-job/aik-loop|training-job/aik-backtest)-\*$", _flat(r))
                for r in resources
            )


def test_roles_are_passed_only_to_the_emr_and_job_roles(synth: Synthesized) -> None:
    passed = {
        _flat(r)
        for s in _statements(synth)
        if "iam:PassRole" in _actions(s)
        for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    }
    job_role = _logical_id(synth, "AWS::IAM::Role", "JobRole")
    assert f"<{job_role}.Arn>" in passed
    assert len(passed) == 3
    assert sum(r.startswith("<output aik-sagemaker-emr ") for r in passed) == 2  # the EMR roles


def test_every_role_of_the_loop_is_under_the_permissions_boundary(synth: Synthesized) -> None:
    roles = _resources(synth, "AWS::IAM::Role")
    assert roles
    for role in roles.values():
        assert "PermissionsBoundary" in role["Properties"]


def test_the_state_machine_logs_and_traces(synth: Synthesized) -> None:
    synth.template("loop").has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": Match.object_like({"Level": "ALL", "IncludeExecutionData": True}),
        },
    )


@pytest.mark.parametrize("hours", [0, 169])
def test_a_max_age_cloudwatch_cannot_evaluate_is_refused(hours: int) -> None:
    from stacks.config import KitConfig

    with pytest.raises(ValueError, match="release_max_age_hours"):
        KitConfig(release_max_age_hours=hours)


def test_the_state_machine_is_created_after_its_policy(synth: Synthesized) -> None:
    (machine,) = _resources(synth, "AWS::StepFunctions::StateMachine").values()
    (policy,) = machine["DependsOn"]
    assert synth.templates["loop"]["Resources"][policy]["Type"] == "AWS::IAM::Policy"


def test_the_outputs_name_the_state_machine_and_the_topic(synth: Synthesized) -> None:
    outputs = synth.templates["loop"]["Outputs"]
    machine = _logical_id(synth, "AWS::StepFunctions::StateMachine", "StateMachine")
    topic = _logical_id(synth, "AWS::SNS::Topic", "Notifications")
    assert outputs["StateMachineArn"]["Value"] == {"Ref": machine}
    assert outputs["NotificationsTopicArn"]["Value"] == {"Ref": topic}
