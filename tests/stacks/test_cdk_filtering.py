"""Invariants of the `aik/filtering` stack: the ECS service, its containers, parameters and monitoring."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match
from cdk_helpers import Synthesized, resolve_join

from aik import dashboard, params
from stacks.filtering_service import (
    CLOUDWATCH_AGENT_IMAGE,
    FILTERING_PORT,
    IMAGE_CONTEXT_EXCLUDES,
    health_check_command,
)

STACK = "filtering"


def _containers(synth: Synthesized) -> dict[str, dict[str, Any]]:
    (task,) = synth.resources(STACK, "AWS::ECS::TaskDefinition").values()
    return {c["Name"]: c for c in task["Properties"]["ContainerDefinitions"]}


def _parameter_value(synth: Synthesized, name: str) -> Any:
    (value,) = [
        p["Properties"]["Value"]
        for p in synth.resources(STACK, "AWS::SSM::Parameter").values()
        if p["Properties"]["Name"] == name
    ]
    return value


def _task_role_statements(synth: Synthesized) -> list[dict[str, Any]]:
    (task,) = synth.resources(STACK, "AWS::ECS::TaskDefinition").values()
    role_id = task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
    return [
        s
        for p in synth.resources(STACK, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def _image_assets(synth: Synthesized) -> dict[str, dict[str, Any]]:
    """The stack's Docker image assets by image tag (content hash), with their staged build context."""
    (manifest,) = synth.assembly_dir.glob(f"assembly-*/{synth.stage.filtering.artifact_id}.assets.json")
    images = json.loads(manifest.read_text())["dockerImages"]
    return {
        tag: {**image["source"], "context": (manifest.parent / image["source"]["directory"]).resolve()}
        for tag, image in images.items()
    }


def _image_of(synth: Synthesized, container: str) -> dict[str, Any]:
    image = _containers(synth)[container]["Image"]
    (tag,) = re.findall(r":([0-9a-f]{64})$", image["Fn::Sub"])
    return _image_assets(synth)[tag]


def _dashboard(synth: Synthesized) -> dict[str, Any]:
    (board,) = synth.resources(STACK, "AWS::CloudWatch::Dashboard").values()
    return json.loads(resolve_join(board["Properties"]["DashboardBody"]))


# --- cluster, task, service -----------------------------------------------------------------------


def test_cluster_is_advertising_server_with_container_insights(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::ECS::Cluster",
        {
            "ClusterName": "advertising-server",
            "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}],
        },
    )


def test_task_is_a_4_vcpu_8_gib_fargate_task_of_the_adserver_family(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "Family": "adserver-application",
            "Cpu": "4096",
            "Memory": "8192",
            "RequiresCompatibilities": ["FARGATE"],
        },
    )


def test_containers_fit_the_task(synth: Synthesized) -> None:
    containers = _containers(synth).values()
    assert sum(c["Cpu"] for c in containers) <= 4096
    assert sum(c["Memory"] for c in containers) <= 8192


def test_task_has_the_three_containers(synth: Synthesized) -> None:
    assert set(_containers(synth)) == {"filtering-server", "advertising-server", "cloudwatch"}


def test_filtering_server_serves_thrift_on_9090_as_user_8000(synth: Synthesized) -> None:
    server = _containers(synth)["filtering-server"]
    assert server["PortMappings"] == [{"ContainerPort": FILTERING_PORT, "Protocol": "tcp"}]
    assert server["User"] == "8000"
    assert server["Essential"] is True
    assert server["Command"][:2] == ["--backend", "aws"]


def test_filtering_server_image_is_built_from_its_dockerfile(synth: Synthesized) -> None:
    image = _image_of(synth, "filtering-server")
    assert image["dockerFile"] == "filtering_server/Dockerfile"
    assert image["platform"] == "linux/amd64"


def test_filtering_server_has_a_health_check_on_its_port(synth: Synthesized) -> None:
    check = _containers(synth)["filtering-server"]["HealthCheck"]
    assert check["Command"] == health_check_command()
    assert str(FILTERING_PORT) in check["Command"][-1]
    assert check["StartPeriod"] >= 60


def test_health_check_command_passes_only_when_the_port_accepts(tmp_path: Path) -> None:
    # The same probe, on an ephemeral port, run by a plain Python as the slim image would.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        probe = health_check_command(port)[1:]
        probe[0] = sys.executable
        assert subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode != 0


def test_advertising_server_replays_against_localhost_as_user_8000(synth: Synthesized) -> None:
    emulator = _containers(synth)["advertising-server"]
    assert emulator["Command"] == ["--backend", "aws", "localhost", "1", "500000"]
    assert emulator["User"] == "8000"
    assert emulator["Essential"] is False


def test_advertising_server_starts_once_the_filtering_server_is_healthy(synth: Synthesized) -> None:
    emulator = _containers(synth)["advertising-server"]
    assert {"Condition": "HEALTHY", "ContainerName": "filtering-server"} in emulator["DependsOn"]


def test_advertising_server_image_is_built_from_its_dockerfile(synth: Synthesized) -> None:
    image = _image_of(synth, "advertising-server")
    assert image["dockerFile"] == "ad_server_emulator/Dockerfile"
    assert image["platform"] == "linux/amd64"


def test_cloudwatch_agent_image_is_pinned(synth: Synthesized) -> None:
    agent = _containers(synth)["cloudwatch"]
    assert agent["Image"] == CLOUDWATCH_AGENT_IMAGE
    assert agent["Image"].startswith("public.ecr.aws/cloudwatch-agent/cloudwatch-agent:")
    assert not agent["Image"].endswith(":latest")


def test_cloudwatch_agent_reads_its_config_from_the_monitoring_parameter(synth: Synthesized) -> None:
    (secret,) = [s for s in _containers(synth)["cloudwatch"]["Secrets"] if s["Name"] == "CW_CONFIG_CONTENT"]
    (config_param,) = [
        logical_id
        for logical_id, p in synth.resources(STACK, "AWS::SSM::Parameter").items()
        if p["Properties"]["Name"] == params.MONITORING_CONFIG
    ]
    assert resolve_join(secret["ValueFrom"]).endswith("${" + config_param + "}")


def test_agent_config_receives_statsd_into_namespace_aik_every_5_seconds(synth: Synthesized) -> None:
    config = json.loads(_parameter_value(synth, params.MONITORING_CONFIG))
    statsd = config["metrics"]["metrics_collected"]["statsd"]
    assert config["metrics"]["namespace"] == dashboard.NAMESPACE == "aik"
    assert statsd["service_address"] == ":8125"
    assert statsd["metrics_collection_interval"] == statsd["metrics_aggregation_interval"] == 5


def test_current_region_parameter_is_the_stack_region(synth: Synthesized) -> None:
    assert _parameter_value(synth, params.CURRENT_REGION) == {"Ref": "AWS::Region"}


def test_every_container_gets_the_region_from_the_current_region_parameter(synth: Synthesized) -> None:
    (region_param,) = [
        logical_id
        for logical_id, p in synth.resources(STACK, "AWS::SSM::Parameter").items()
        if p["Properties"]["Name"] == params.CURRENT_REGION
    ]
    for name, container in _containers(synth).items():
        (region,) = [s for s in container["Secrets"] if s["Name"] == "AWS_REGION"]
        assert resolve_join(region["ValueFrom"]).endswith("${" + region_param + "}"), name


def test_no_container_has_plain_environment_variables(synth: Synthesized) -> None:
    assert all("Environment" not in c for c in _containers(synth).values())


def test_every_container_logs_to_its_aik_log_group(synth: Synthesized) -> None:
    groups = {
        logical_id: g["Properties"]["LogGroupName"]
        for logical_id, g in synth.resources(STACK, "AWS::Logs::LogGroup").items()
    }
    used = {
        name: groups[c["LogConfiguration"]["Options"]["awslogs-group"]["Ref"]]
        for name, c in _containers(synth).items()
    }
    assert used == {
        "filtering-server": "/aik/filtering-server",
        "advertising-server": "/aik/advertising-server",
        "cloudwatch": "/aik/monitoring",
    }


def test_service_runs_one_task_in_private_subnets(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::ECS::Service",
        {
            "ServiceName": "aik-application",
            "DesiredCount": 1,
            "LaunchType": "FARGATE",
            "NetworkConfiguration": {
                "AwsvpcConfiguration": Match.object_like(
                    {
                        "AssignPublicIp": "DISABLED",
                        "Subnets": [
                            {
                                "Fn::GetStackOutput": Match.object_like(
                                    {"OutputName": Match.string_like_regexp("privateSubnet1")}
                                )
                            },
                            {
                                "Fn::GetStackOutput": Match.object_like(
                                    {"OutputName": Match.string_like_regexp("privateSubnet2")}
                                )
                            },
                        ],
                    }
                )
            },
        },
    )


def test_deployments_roll_back_on_failure(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::ECS::Service",
        {
            "DeploymentConfiguration": Match.object_like(
                {"DeploymentCircuitBreaker": {"Enable": True, "Rollback": True}}
            )
        },
    )


def test_service_security_group_admits_nothing(synth: Synthesized) -> None:
    (group,) = synth.resources(STACK, "AWS::EC2::SecurityGroup").values()
    assert "SecurityGroupIngress" not in group["Properties"]


def test_scaling_is_off_by_default(synth: Synthesized) -> None:
    synth.template(STACK).resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)


def test_scaling_switch_adds_a_cpu_target_tracking_policy(variant: Synthesized) -> None:
    template = variant.template(STACK)
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget", {"MinCapacity": 1, "MaxCapacity": 3}
    )
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {"PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}}
            ),
        },
    )


# --- task role ------------------------------------------------------------------------------------


def test_task_role_gets_exactly_the_parameters_the_containers_read(synth: Synthesized) -> None:
    (statement,) = [s for s in _task_role_statements(synth) if "ssm:GetParameter" in str(s["Action"])]
    assert statement["Action"] == "ssm:GetParameter"
    names = sorted(resolve_join(r).split(":parameter", 1)[1] for r in statement["Resource"])
    assert names == sorted(
        [params.XGBOOST_PATH, params.PIPELINE_MODEL, params.PIPELINE_SCHEMA, params.INFERENCE_DATA]
    )


def test_task_role_may_put_metrics_only_into_namespace_aik(synth: Synthesized) -> None:
    (statement,) = [s for s in _task_role_statements(synth) if s["Action"] == "cloudwatch:PutMetricData"]
    assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "aik"}}


def test_task_role_reads_the_data_bucket_through_the_read_policy(synth: Synthesized) -> None:
    (task,) = synth.resources(STACK, "AWS::ECS::TaskDefinition").values()
    role = synth.templates[STACK]["Resources"][task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]]
    (policy,) = role["Properties"]["ManagedPolicyArns"]
    assert "DataReadPolicy" in json.dumps(policy)
    (read,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for logical_id, p in synth.resources("sagemaker-emr", "AWS::IAM::ManagedPolicy").items()
        if "DataReadPolicy" in logical_id
    ]
    assert {s["Action"] for s in read} == {"s3:ListBucket", "s3:GetObject"}


# --- dashboard and alarms -------------------------------------------------------------------------


def test_dashboard_is_named_monitoring_dashboard(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::CloudWatch::Dashboard", {"DashboardName": dashboard.DASHBOARD_NAME}
    )


def test_dashboard_shows_the_shared_widgets_in_order(synth: Synthesized) -> None:
    widgets = _dashboard(synth)["widgets"]
    assert [w["properties"]["title"] for w in widgets] == [w.title for w in dashboard.WIDGETS]
    assert [w["properties"]["view"] for w in widgets] == [
        "singleValue" if w.kind == "single_value" else "timeSeries" for w in dashboard.WIDGETS
    ]


def test_dashboard_metrics_are_the_agent_names_in_namespace_aik(synth: Synthesized) -> None:
    for widget, spec in zip(_dashboard(synth)["widgets"], dashboard.WIDGETS, strict=True):
        shown = [m for m in widget["properties"]["metrics"] if m[0] == dashboard.NAMESPACE]
        assert [(m[1], m[2], m[3]) for m in shown] == [
            (s.cloudwatch_name, dashboard.DIMENSION, s.metric_type) for s in spec.metrics
        ]


def test_dashboard_latency_is_shown_in_ms_without_rescaling(synth: Synthesized) -> None:
    latency = _dashboard(synth)["widgets"][0]["properties"]
    assert not any("expression" in str(m) for m in latency["metrics"])
    assert {m[-1]["stat"] for m in latency["metrics"]} == {"p99"}
    assert "/1000" not in json.dumps(_dashboard(synth))


def test_dashboard_requests_per_second_divide_the_10_second_sum(synth: Synthesized) -> None:
    requests = _dashboard(synth)["widgets"][1]["properties"]["metrics"]
    expressions = [m[0]["expression"] for m in requests if "expression" in m[0]]
    assert expressions == [f"m0/{dashboard.PERIOD_S}"]
    (counted,) = [m for m in requests if m[0] == dashboard.NAMESPACE]
    assert counted[-1]["stat"] == "Sum" and counted[-1]["period"] == dashboard.PERIOD_S


def test_dashboard_total_sums_over_the_whole_time_range(synth: Synthesized) -> None:
    total = _dashboard(synth)["widgets"][3]["properties"]
    assert total["setPeriodToTimeRange"] is True


def test_latency_alarm_watches_the_server_p99(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 10,
            "Metrics": [
                Match.object_like(
                    {
                        "MetricStat": Match.object_like(
                            {
                                "Stat": "p99",
                                "Metric": Match.object_like(
                                    {"MetricName": "filtering_server_filtering_latency", "Namespace": "aik"}
                                ),
                            }
                        )
                    }
                )
            ],
        },
    )


def test_latency_alarm_threshold_follows_the_setting(variant: Synthesized) -> None:
    thresholds = {
        a["Properties"]["Threshold"] for a in variant.resources(STACK, "AWS::CloudWatch::Alarm").values()
    }
    assert 25 in thresholds


def test_traffic_alarm_fires_when_requests_stop(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "ComparisonOperator": "LessThanThreshold",
            "Threshold": 1,
            "TreatMissingData": "breaching",
            "Metrics": [
                Match.object_like(
                    {
                        "MetricStat": Match.object_like(
                            {
                                "Stat": "Sum",
                                "Metric": Match.object_like(
                                    {"MetricName": "filtering_server_filtering_count"}
                                ),
                            }
                        )
                    }
                )
            ],
        },
    )


# --- image build contexts -------------------------------------------------------------------------


def _image_contexts(synth: Synthesized) -> dict[str, Path]:
    return {image["dockerFile"]: image["context"] for image in _image_assets(synth).values()}


@pytest.mark.parametrize("dockerfile", ["filtering_server/Dockerfile", "ad_server_emulator/Dockerfile"])
def test_image_context_holds_what_the_dockerfile_copies(synth: Synthesized, dockerfile: str) -> None:
    context = _image_contexts(synth)[dockerfile]
    copies = re.findall(r"^COPY\s+(.+)\s+\S+$", (context / dockerfile).read_text(), flags=re.MULTILINE)
    sources = [source for line in copies for source in line.split() if not source.startswith("--")]
    assert sources
    for source in sources:
        assert (context / source).exists(), source


@pytest.mark.parametrize("dockerfile", ["filtering_server/Dockerfile", "ad_server_emulator/Dockerfile"])
def test_image_context_is_small_and_holds_no_local_state(synth: Synthesized, dockerfile: str) -> None:
    context = _image_contexts(synth)[dockerfile]
    files = [p for p in context.rglob("*") if p.is_file()]
    top = {p.relative_to(context).parts[0] for p in files}
    assert top <= {
        "pyproject.toml",
        "README.md",
        ".dockerignore",
        "aik",
        "filtering_api",
        "filtering_server",
        "ad_server_emulator",
        "stacks",
    }
    for excluded in IMAGE_CONTEXT_EXCLUDES:
        assert not list(context.glob(excluded)), excluded
    assert sum(p.stat().st_size for p in files) < 2_000_000
