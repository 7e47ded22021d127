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
    EMULATOR_TASK_FAMILY,
    FILTERING_PORT,
    IMAGE_CONTEXT_EXCLUDES,
    TASK_FAMILY,
    health_check_command,
)
from stacks.network import VPC_CIDR

STACK = "filtering"


def _task(synth: Synthesized, family: str = TASK_FAMILY) -> dict[str, Any]:
    (task,) = [
        t
        for t in synth.resources(STACK, "AWS::ECS::TaskDefinition").values()
        if t["Properties"]["Family"] == family
    ]
    return task


def _containers(synth: Synthesized, family: str = TASK_FAMILY) -> dict[str, dict[str, Any]]:
    return {c["Name"]: c for c in _task(synth, family)["Properties"]["ContainerDefinitions"]}


def _emulator(variant: Synthesized) -> dict[str, dict[str, Any]]:
    """The emulator task's containers (the variant turns the emulator on)."""
    return _containers(variant, EMULATOR_TASK_FAMILY)


def _all_containers(variant: Synthesized) -> dict[str, dict[str, Any]]:
    """Every container of both tasks, named `<family>/<container>`."""
    return {
        f"{family}/{name}": c
        for family in (TASK_FAMILY, EMULATOR_TASK_FAMILY)
        for name, c in _containers(variant, family).items()
    }


def _parameter_value(synth: Synthesized, name: str) -> Any:
    (value,) = [
        p["Properties"]["Value"]
        for p in synth.resources(STACK, "AWS::SSM::Parameter").values()
        if p["Properties"]["Name"] == name
    ]
    return value


def _task_role_statements(synth: Synthesized, family: str = TASK_FAMILY) -> list[dict[str, Any]]:
    role_id = _task(synth, family)["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
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


def _image_of(synth: Synthesized, container: str, family: str = TASK_FAMILY) -> dict[str, Any]:
    image = _containers(synth, family)[container]["Image"]
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


def test_server_task_is_a_2_vcpu_4_gib_fargate_task_of_the_adserver_family(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "Family": "adserver-application",
            "Cpu": "2048",
            "Memory": "4096",
            "RequiresCompatibilities": ["FARGATE"],
        },
    )


@pytest.mark.parametrize("family", [TASK_FAMILY, EMULATOR_TASK_FAMILY])
def test_containers_fit_their_task(variant: Synthesized, family: str) -> None:
    task = _task(variant, family)["Properties"]
    containers = _containers(variant, family).values()
    assert sum(c["Cpu"] for c in containers) <= int(task["Cpu"])
    assert sum(c["Memory"] for c in containers) <= int(task["Memory"])


def test_server_task_has_the_server_and_its_agent_only(synth: Synthesized) -> None:
    assert set(_containers(synth)) == {"filtering-server", "cloudwatch"}


def test_emulator_task_has_the_emulator_and_its_agent(variant: Synthesized) -> None:
    assert set(_emulator(variant)) == {"advertising-server", "cloudwatch"}


def test_emulator_is_off_by_default(synth: Synthesized) -> None:
    families = [
        t["Properties"]["Family"] for t in synth.resources(STACK, "AWS::ECS::TaskDefinition").values()
    ]
    assert families == [TASK_FAMILY]
    synth.template(STACK).resource_count_is("AWS::ECS::Service", 1)


def test_filtering_server_serves_thrift_on_9090_as_user_8000(synth: Synthesized) -> None:
    server = _containers(synth)["filtering-server"]
    assert server["PortMappings"] == [{"ContainerPort": FILTERING_PORT, "Protocol": "tcp"}]
    assert server["User"] == "8000"
    assert server["Essential"] is True
    assert server["Command"][:2] == ["--backend", "aws"]


def test_filtering_server_listens_on_every_interface_of_its_task(synth: Synthesized) -> None:
    command = _containers(synth)["filtering-server"]["Command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"  # the server's own default is loopback


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


def test_advertising_server_replays_against_the_load_balancer_as_user_8000(variant: Synthesized) -> None:
    emulator = _emulator(variant)["advertising-server"]
    (balancer,) = variant.resources(STACK, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert emulator["Command"] == [
        "--backend",
        "aws",
        {"Fn::GetAtt": [balancer, "DNSName"]},
        "1",
        "500000",
    ]
    assert emulator["User"] == "8000"
    # the replay ends; the task (and its agent) stays, so ECS starts no second replay
    assert emulator["Essential"] is False


def test_emulator_service_starts_after_the_filtering_service(variant: Synthesized) -> None:
    services = variant.resources(STACK, "AWS::ECS::Service")
    (server,) = [i for i, s in services.items() if s["Properties"]["ServiceName"] == "aik-application"]
    (emulator,) = [s for s in services.values() if s["Properties"]["ServiceName"] == "aik-emulator"]
    assert server in emulator["DependsOn"]
    assert emulator["Properties"]["DesiredCount"] == 1
    assert emulator["Properties"]["DeploymentConfiguration"]["MaximumPercent"] == 100


def test_advertising_server_image_is_built_from_its_dockerfile(variant: Synthesized) -> None:
    image = _image_of(variant, "advertising-server", EMULATOR_TASK_FAMILY)
    assert image["dockerFile"] == "ad_server_emulator/Dockerfile"
    assert image["platform"] == "linux/amd64"


@pytest.mark.parametrize("family", [TASK_FAMILY, EMULATOR_TASK_FAMILY])
def test_cloudwatch_agent_image_is_pinned(variant: Synthesized, family: str) -> None:
    agent = _containers(variant, family)["cloudwatch"]
    assert agent["Image"] == CLOUDWATCH_AGENT_IMAGE
    assert agent["Image"].startswith("public.ecr.aws/cloudwatch-agent/cloudwatch-agent:")
    assert not agent["Image"].endswith(":latest")


@pytest.mark.parametrize("family", [TASK_FAMILY, EMULATOR_TASK_FAMILY])
def test_cloudwatch_agent_reads_its_config_from_the_monitoring_parameter(
    variant: Synthesized, family: str
) -> None:
    agent = _containers(variant, family)["cloudwatch"]
    (secret,) = [s for s in agent["Secrets"] if s["Name"] == "CW_CONFIG_CONTENT"]
    (config_param,) = [
        logical_id
        for logical_id, p in variant.resources(STACK, "AWS::SSM::Parameter").items()
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


def test_every_container_gets_the_region_from_the_current_region_parameter(variant: Synthesized) -> None:
    (region_param,) = [
        logical_id
        for logical_id, p in variant.resources(STACK, "AWS::SSM::Parameter").items()
        if p["Properties"]["Name"] == params.CURRENT_REGION
    ]
    for name, container in _all_containers(variant).items():
        (region,) = [s for s in container["Secrets"] if s["Name"] == "AWS_REGION"]
        assert resolve_join(region["ValueFrom"]).endswith("${" + region_param + "}"), name


def test_no_container_has_plain_environment_variables(variant: Synthesized) -> None:
    assert all("Environment" not in c for c in _all_containers(variant).values())


def test_every_container_logs_to_its_aik_log_group(variant: Synthesized) -> None:
    groups = {
        logical_id: g["Properties"].get("LogGroupName")
        for logical_id, g in variant.resources(STACK, "AWS::Logs::LogGroup").items()
    }
    used = {
        name: groups[c["LogConfiguration"]["Options"]["awslogs-group"]["Ref"]]
        for name, c in _all_containers(variant).items()
    }
    assert used == {
        f"{TASK_FAMILY}/filtering-server": "/aik/filtering-server",
        f"{TASK_FAMILY}/cloudwatch": "/aik/monitoring",
        f"{EMULATOR_TASK_FAMILY}/advertising-server": "/aik/advertising-server",
        f"{EMULATOR_TASK_FAMILY}/cloudwatch": "/aik/monitoring",
    }


def _service(synth: Synthesized, name: str = "aik-application") -> dict[str, Any]:
    (service,) = [
        s
        for s in synth.resources(STACK, "AWS::ECS::Service").values()
        if s["Properties"]["ServiceName"] == name
    ]
    return service


def _group_id(synth: Synthesized, description_start: str) -> str:
    (logical_id,) = [
        i
        for i, g in synth.resources(STACK, "AWS::EC2::SecurityGroup").items()
        if g["Properties"]["GroupDescription"].startswith(description_start)
    ]
    return logical_id


def _private_subnets() -> list[Any]:
    return [
        {
            "Fn::GetStackOutput": Match.object_like(
                {"OutputName": Match.string_like_regexp(f"privateSubnet{i}")}
            )
        }
        for i in (1, 2)
    ]


def test_service_runs_two_tasks_over_the_private_subnets_of_both_azs(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::ECS::Service",
        {
            "ServiceName": "aik-application",
            "DesiredCount": 2,
            "LaunchType": "FARGATE",
            "NetworkConfiguration": {
                "AwsvpcConfiguration": Match.object_like(
                    {"AssignPublicIp": "DISABLED", "Subnets": _private_subnets()}
                )
            },
        },
    )


def test_deploys_start_new_tasks_before_stopping_old_ones(synth: Synthesized) -> None:
    config = _service(synth)["Properties"]["DeploymentConfiguration"]
    assert (config["MinimumHealthyPercent"], config["MaximumPercent"]) == (100, 200)


def test_deployments_roll_back_on_failure(synth: Synthesized) -> None:
    config = _service(synth)["Properties"]["DeploymentConfiguration"]
    assert config["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}


def test_load_balancer_is_internal_in_the_private_subnets_across_zones(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        {
            "Type": "network",
            "Scheme": "internal",
            "Subnets": _private_subnets(),
            "LoadBalancerAttributes": Match.array_with(
                [{"Key": "load_balancing.cross_zone.enabled", "Value": "true"}]
            ),
        },
    )


def test_load_balancer_listens_for_thrift_on_9090_over_tcp(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": FILTERING_PORT,
            "Protocol": "TCP",
            # the original client keeps its connections open for the whole run
            "ListenerAttributes": [{"Key": "tcp.idle_timeout.seconds", "Value": "3600"}],
        },
    )


def test_load_balancer_health_checks_the_thrift_port(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {
            "Port": FILTERING_PORT,
            "Protocol": "TCP",
            "TargetType": "ip",
            "HealthCheckProtocol": "TCP",
            "HealthCheckPort": str(FILTERING_PORT),
        },
    )


def test_service_registers_the_filtering_server_with_the_load_balancer(synth: Synthesized) -> None:
    (target_group,) = synth.resources(STACK, "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert _service(synth)["Properties"]["LoadBalancers"] == [
        {
            "ContainerName": "filtering-server",
            "ContainerPort": FILTERING_PORT,
            "TargetGroupArn": {"Ref": target_group},
        }
    ]
    assert _service(synth)["Properties"]["HealthCheckGracePeriodSeconds"] >= 120


def test_load_balancer_admits_thrift_from_the_vpc_only(synth: Synthesized) -> None:
    group = synth.resources(STACK, "AWS::EC2::SecurityGroup")[_group_id(synth, "Internal NLB")]
    (rule,) = group["Properties"]["SecurityGroupIngress"]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", FILTERING_PORT, FILTERING_PORT)
    assert rule["CidrIp"] == VPC_CIDR


def test_tasks_admit_thrift_from_the_load_balancer_only(synth: Synthesized) -> None:
    service_group = _service(synth)["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"][
        "SecurityGroups"
    ]
    (service_id,) = [g["Fn::GetAtt"][0] for g in service_group]
    assert (
        "SecurityGroupIngress"
        not in synth.resources(STACK, "AWS::EC2::SecurityGroup")[service_id]["Properties"]
    )
    rules = [
        r["Properties"]
        for r in synth.resources(STACK, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [service_id, "GroupId"]}
    ]
    assert rules == [
        {
            "Description": "Thrift from the NLB",
            "FromPort": FILTERING_PORT,
            "ToPort": FILTERING_PORT,
            "IpProtocol": "tcp",
            "GroupId": {"Fn::GetAtt": [service_id, "GroupId"]},
            "SourceSecurityGroupId": {"Fn::GetAtt": [_group_id(synth, "Internal NLB"), "GroupId"]},
        }
    ]


def test_load_balancer_sends_only_thrift_to_the_tasks(synth: Synthesized) -> None:
    group = synth.resources(STACK, "AWS::EC2::SecurityGroup")[_group_id(synth, "Internal NLB")]
    egress = [r["Properties"] for r in synth.resources(STACK, "AWS::EC2::SecurityGroupEgress").values()]
    assert "SecurityGroupEgress" not in group["Properties"] or all(
        r.get("CidrIp") == "255.255.255.255/32" for r in group["Properties"]["SecurityGroupEgress"]
    )
    assert [(r["FromPort"], r["ToPort"]) for r in egress] == [(FILTERING_PORT, FILTERING_PORT)]


def test_endpoint_output_names_the_load_balancer_and_port(synth: Synthesized) -> None:
    (balancer,) = synth.resources(STACK, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    output = synth.templates[STACK]["Outputs"]["FilteringEndpoint"]["Value"]
    assert output == {"Fn::Join": ["", [{"Fn::GetAtt": [balancer, "DNSName"]}, ":9090"]]}


def test_service_scales_on_cpu_between_two_and_four_tasks_by_default(synth: Synthesized) -> None:
    template = synth.template(STACK)
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget", {"MinCapacity": 2, "MaxCapacity": 4}
    )
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
                    },
                    "TargetValue": 60,
                }
            ),
        },
    )


def test_scaling_bounds_follow_the_settings(variant: Synthesized) -> None:
    variant.template(STACK).has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget", {"MinCapacity": 1, "MaxCapacity": 3}
    )


# --- task role ------------------------------------------------------------------------------------


def _parameters_readable(synth: Synthesized, family: str) -> list[str]:
    (statement,) = [s for s in _task_role_statements(synth, family) if "ssm:GetParameter" in str(s["Action"])]
    assert statement["Action"] == "ssm:GetParameter"
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    return sorted(resolve_join(r).split(":parameter", 1)[1] for r in resources)


def test_server_role_gets_exactly_the_release_pointer_experiment_and_model_parameters(
    synth: Synthesized,
) -> None:
    assert _parameters_readable(synth, TASK_FAMILY) == sorted(
        [
            params.RELEASE_LIVE,
            params.EXPERIMENT,
            params.XGBOOST_PATH,
            params.PIPELINE_MODEL,
            params.PIPELINE_SCHEMA,
        ]
    )


def test_emulator_role_gets_exactly_the_inference_data_parameter(variant: Synthesized) -> None:
    assert _parameters_readable(variant, EMULATOR_TASK_FAMILY) == [params.INFERENCE_DATA]


def test_task_role_may_put_metrics_only_into_namespace_aik(synth: Synthesized) -> None:
    (statement,) = [s for s in _task_role_statements(synth) if s["Action"] == "cloudwatch:PutMetricData"]
    assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "aik"}}


def test_task_role_reads_the_data_bucket_through_the_read_policy(synth: Synthesized) -> None:
    task = _task(synth)
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
    widgets = _dashboard(synth)["widgets"][: len(dashboard.WIDGETS)]
    assert [w["properties"]["title"] for w in widgets] == [w.title for w in dashboard.WIDGETS]
    assert [w["properties"]["view"] for w in widgets] == [
        "singleValue" if w.kind == "single_value" else "timeSeries" for w in dashboard.WIDGETS
    ]


def test_dashboard_second_row_shows_each_arms_metric_found_by_search(synth: Synthesized) -> None:
    widgets = _dashboard(synth)["widgets"][len(dashboard.WIDGETS) :]
    assert [w["properties"]["title"] for w in widgets] == [w.title for w in dashboard.ARM_WIDGETS]
    assert {w["y"] for w in widgets} == {6}  # a row of its own, under the first
    for widget, spec in zip(widgets, dashboard.ARM_WIDGETS, strict=True):
        (expression,) = [m[0]["expression"] for m in widget["properties"]["metrics"]]
        assert expression == (
            f"SEARCH('{{aik,arm,metric_type}} MetricName=\"{spec.metric.cloudwatch_name}\"', "
            f"'{spec.metric.stat}', {dashboard.PERIOD_S})"
        )


def test_dashboard_metrics_are_the_agent_names_in_namespace_aik(synth: Synthesized) -> None:
    for widget, spec in zip(
        _dashboard(synth)["widgets"][: len(dashboard.WIDGETS)], dashboard.WIDGETS, strict=True
    ):
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
        a["Properties"].get("Threshold") for a in variant.resources(STACK, "AWS::CloudWatch::Alarm").values()
    }
    assert 25 in thresholds


def test_latency_alarm_raises_nothing_when_requests_stop(synth: Synthesized) -> None:
    # the replay ends, or a quiet hour: no latency data is not an alarm
    synth.template(STACK).has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching"},
    )


def test_no_alarm_counts_missing_requests_as_a_failure(synth: Synthesized) -> None:
    for alarm in synth.resources(STACK, "AWS::CloudWatch::Alarm").values():
        for entry in alarm["Properties"]["Metrics"]:
            metric = entry.get("MetricStat", {}).get("Metric", {})
            if metric.get("Namespace") == dashboard.NAMESPACE:
                assert alarm["Properties"]["TreatMissingData"] == "notBreaching", metric["MetricName"]


def _alarm_metrics(alarm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["Id"]: m for m in alarm["Properties"]["Metrics"]}


@pytest.mark.parametrize("arm", ["champion", "challenger"])
def test_likelihood_alarm_fires_when_an_arms_mean_prediction_leaves_its_anomaly_band(
    synth: Synthesized, arm: str
) -> None:
    (alarm,) = [
        a
        for a in synth.resources(STACK, "AWS::CloudWatch::Alarm").values()
        if any(
            {"Name": "arm", "Value": arm} in m.get("MetricStat", {}).get("Metric", {}).get("Dimensions", [])
            for m in a["Properties"]["Metrics"]
        )
    ]
    props = alarm["Properties"]
    assert props["ComparisonOperator"] == "LessThanLowerOrGreaterThanUpperThreshold"
    band = _alarm_metrics(alarm)[props["ThresholdMetricId"]]
    (watched,) = [m for m in props["Metrics"] if "MetricStat" in m]
    assert band["Expression"] == f"ANOMALY_DETECTION_BAND({watched['Id']}, 3)"
    assert watched["MetricStat"]["Metric"]["MetricName"] == "filtering_server_arm_likelihood"
    assert watched["MetricStat"]["Stat"] == "Average"
    assert props["TreatMissingData"] == "notBreaching"  # no experiment, no challenger data: no alarm


def test_error_alarm_watches_the_share_of_error_replies(synth: Synthesized) -> None:
    (alarm,) = [
        a
        for a in synth.resources(STACK, "AWS::CloudWatch::Alarm").values()
        if any(m.get("Expression") == "errors / (errors + requests)" for m in a["Properties"]["Metrics"])
    ]
    names = {
        m["Id"]: m["MetricStat"]["Metric"]["MetricName"]
        for m in alarm["Properties"]["Metrics"]
        if "MetricStat" in m
    }
    assert names == {
        "errors": "filtering_server_filtering_errors",
        "requests": "filtering_server_filtering_count",
    }
    assert alarm["Properties"]["Threshold"] == 0.01


def test_server_sends_the_sampled_prediction_log_to_the_delivery_stream(synth: Synthesized) -> None:
    command = _containers(synth)["filtering-server"]["Command"]
    assert command[command.index("--prediction-sample") + 1] == "0.1"
    (stream_id,) = synth.resources(STACK, "AWS::KinesisFirehose::DeliveryStream")
    assert command[command.index("--prediction-log") + 1] == {
        "Fn::Join": ["", ["firehose:", {"Ref": stream_id}]]
    }
    (put,) = [s for s in _task_role_statements(synth) if "firehose:PutRecordBatch" in s["Action"]]
    assert put["Resource"] == {"Fn::GetAtt": [stream_id, "Arn"]}


def test_delivery_stream_writes_gzip_hour_prefixes_under_predictions_encrypted(synth: Synthesized) -> None:
    synth.template(STACK).has_resource_properties(
        "AWS::KinesisFirehose::DeliveryStream",
        {
            "DeliveryStreamType": "DirectPut",
            "DeliveryStreamEncryptionConfigurationInput": {"KeyType": "AWS_OWNED_CMK"},
            "ExtendedS3DestinationConfiguration": Match.object_like(
                {"Prefix": "predictions/", "CompressionFormat": "GZIP"}
            ),
        },
    )


def test_health_alarm_fires_when_no_task_behind_the_load_balancer_is_healthy(synth: Synthesized) -> None:
    (target_group,) = synth.resources(STACK, "AWS::ElasticLoadBalancingV2::TargetGroup")
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
                                "Stat": "Minimum",
                                "Metric": Match.object_like(
                                    {
                                        "Namespace": "AWS/NetworkELB",
                                        "MetricName": "HealthyHostCount",
                                        "Dimensions": Match.array_with(
                                            [Match.object_like({"Name": "TargetGroup"})]
                                        ),
                                    }
                                ),
                            }
                        )
                    }
                )
            ],
        },
    )
    assert target_group


# --- model check ----------------------------------------------------------------------------------


def test_service_is_created_only_after_the_model_check(synth: Synthesized) -> None:
    (check,) = synth.resources(STACK, "Custom::ModelCheck")
    assert check in _service(synth)["DependsOn"]


def test_model_check_looks_for_the_release_then_the_model_parameters(synth: Synthesized) -> None:
    (check,) = synth.resources(STACK, "Custom::ModelCheck").values()
    assert check["Properties"]["ReleaseParameter"] == params.RELEASE_LIVE
    assert check["Properties"]["ModelParameters"] == [
        params.XGBOOST_PATH,
        params.PIPELINE_MODEL,
        params.PIPELINE_SCHEMA,
    ]


def test_model_check_runs_again_for_every_new_server_image(synth: Synthesized) -> None:
    (check,) = synth.resources(STACK, "Custom::ModelCheck").values()
    assert check["Properties"]["Trigger"] == _containers(synth)["filtering-server"]["Image"]


# --- image build contexts -------------------------------------------------------------------------


def _image_contexts(synth: Synthesized) -> dict[str, Path]:
    return {image["dockerFile"]: image["context"] for image in _image_assets(synth).values()}


@pytest.mark.parametrize("dockerfile", ["filtering_server/Dockerfile", "ad_server_emulator/Dockerfile"])
def test_image_context_holds_what_the_dockerfile_copies(variant: Synthesized, dockerfile: str) -> None:
    context = _image_contexts(variant)[dockerfile]
    copies = re.findall(r"^COPY\s+(.+)\s+\S+$", (context / dockerfile).read_text(), flags=re.MULTILINE)
    sources = [source for line in copies for source in line.split() if not source.startswith("--")]
    assert sources
    for source in sources:
        assert (context / source).exists(), source


@pytest.mark.parametrize("dockerfile", ["filtering_server/Dockerfile", "ad_server_emulator/Dockerfile"])
def test_image_context_is_small_and_holds_no_local_state(variant: Synthesized, dockerfile: str) -> None:
    context = _image_contexts(variant)[dockerfile]
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


def test_model_check_alarm_fires_when_the_watcher_cannot_check(synth: Synthesized) -> None:
    from stacks.monitoring import MODEL_CHECK_AGE_ALARM_S

    synth.template(STACK).has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": MODEL_CHECK_AGE_ALARM_S,
            "Metrics": [
                Match.object_like(
                    {
                        "MetricStat": Match.object_like(
                            {
                                "Stat": "Maximum",
                                "Metric": Match.object_like(
                                    {
                                        "MetricName": "filtering_server_model_check_age_s",
                                        "Dimensions": [{"Name": "metric_type", "Value": "gauge"}],
                                    }
                                ),
                            }
                        )
                    }
                )
            ],
        },
    )
