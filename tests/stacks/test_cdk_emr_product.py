"""Invariants of the Service Catalog product template: the EMR cluster Studio users launch."""

from __future__ import annotations

import re
from typing import Any

from aws_cdk.assertions import Match
from cdk_helpers import Synthesized, resolve_join
from hypothesis import given
from hypothesis import strategies as st

from stacks.buckets import BOOTSTRAP_PREFIX, BOOTSTRAP_SCRIPT_KEY, EMR_LOG_PREFIX, REPO_ROOT
from stacks.emr_product import (
    CLUSTER_PYTHON,
    EMR_RELEASES,
    IDLE_TIMEOUT_PATTERN,
    IDLE_TIMEOUT_RANGE,
    STUDIO_VISIBILITY_TAG,
    idle_timeout_allowed,
)
from stacks.network import EMR_MANAGED_TAG

PRODUCT = "product"


def _cluster(synth: Synthesized) -> dict[str, Any]:
    (cluster,) = synth.resources(PRODUCT, "AWS::EMR::Cluster").values()
    return cluster["Properties"]


def _parameters(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return synth.templates[PRODUCT]["Parameters"]


def _ingress(synth: Synthesized) -> list[dict[str, Any]]:
    return [r["Properties"] for r in synth.resources(PRODUCT, "AWS::EC2::SecurityGroupIngress").values()]


def test_parameters_are_the_ones_studio_shows(synth: Synthesized) -> None:
    assert set(_parameters(synth)) == {
        "SageMakerProjectName",
        "SageMakerProjectId",
        "EmrClusterName",
        "MainInstanceType",
        "CoreInstanceType",
        "CoreInstanceCount",
        "EmrReleaseVersion",
        "AutoTerminationIdleTimeout",
    }


def test_every_parameter_is_a_string_for_studio_form(synth: Synthesized) -> None:
    assert {p["Type"] for p in _parameters(synth).values()} == {"String"}


def test_release_default_is_a_current_emr_7_release_it_allows(synth: Synthesized) -> None:
    release = _parameters(synth)["EmrReleaseVersion"]
    assert re.fullmatch(r"emr-7\.\d+\.\d+", release["Default"])
    assert release["Default"] in release["AllowedValues"]
    assert release["AllowedValues"] == list(EMR_RELEASES)


def test_cluster_takes_its_release_and_name_from_the_parameters(synth: Synthesized) -> None:
    cluster = _cluster(synth)
    assert cluster["ReleaseLabel"] == {"Ref": "EmrReleaseVersion"}
    assert cluster["Name"] == {"Ref": "EmrClusterName"}


def test_main_node_uses_the_main_instance_type_parameter(synth: Synthesized) -> None:
    main = _cluster(synth)["Instances"]["MasterInstanceGroup"]
    assert main["InstanceType"] == {"Ref": "MainInstanceType"}
    assert main["InstanceCount"] == 1


def test_core_nodes_use_the_core_type_and_count_parameters(synth: Synthesized) -> None:
    core = _cluster(synth)["Instances"]["CoreInstanceGroup"]
    assert core["InstanceType"] == {"Ref": "CoreInstanceType"}
    assert core["InstanceCount"] == {"Ref": "CoreInstanceCount"}


def test_auto_termination_uses_the_idle_timeout_parameter(synth: Synthesized) -> None:
    assert _cluster(synth)["AutoTerminationPolicy"] == {"IdleTimeout": {"Ref": "AutoTerminationIdleTimeout"}}
    parameter = _parameters(synth)["AutoTerminationIdleTimeout"]
    assert parameter["AllowedPattern"] == IDLE_TIMEOUT_PATTERN
    assert idle_timeout_allowed(parameter["Default"])


@given(st.integers(min_value=-10, max_value=2_000_000))
def test_idle_timeout_pattern_accepts_exactly_60_to_604800_seconds(seconds: int) -> None:
    low, high = IDLE_TIMEOUT_RANGE
    assert idle_timeout_allowed(str(seconds)) is (low <= seconds <= high)


@given(st.text(alphabet="0123456789 +-.e", min_size=0, max_size=8))
def test_idle_timeout_pattern_rejects_anything_but_plain_numbers(text: str) -> None:
    plain = (
        text.isdigit()
        and not text.startswith("0")
        and IDLE_TIMEOUT_RANGE[0] <= int(text) <= IDLE_TIMEOUT_RANGE[1]
    )
    assert idle_timeout_allowed(text) is plain


def test_cluster_runs_spark_hive_and_livy(synth: Synthesized) -> None:
    assert sorted(a["Name"] for a in _cluster(synth)["Applications"]) == ["Hive", "Livy", "Spark"]


def test_bootstrap_action_runs_the_kit_script_from_the_bootstrap_bucket(synth: Synthesized) -> None:
    (action,) = _cluster(synth)["BootstrapActions"]
    script = action["ScriptBootstrapAction"]
    path, variables = script["Path"]["Fn::Sub"]
    assert path == "s3://${Bucket}/" + BOOTSTRAP_SCRIPT_KEY
    assert variables == {"Bucket": {"Fn::ImportValue": "aik-sagemaker-emr-emr-bootstrap-bucket"}}
    assert script["Args"][0]["Fn::Sub"][0] == "s3://${Bucket}/" + BOOTSTRAP_PREFIX
    assert (REPO_ROOT / BOOTSTRAP_SCRIPT_KEY.removeprefix(BOOTSTRAP_PREFIX)).is_file()


def test_spark_and_livy_use_the_python_the_bootstrap_installs(synth: Synthesized) -> None:
    (spark_env,) = [c for c in _cluster(synth)["Configurations"] if c["Classification"] == "spark-env"]
    (export,) = spark_env["Configurations"]
    assert export["ConfigurationProperties"]["PYSPARK_PYTHON"] == CLUSTER_PYTHON
    script = (REPO_ROOT / BOOTSTRAP_SCRIPT_KEY.removeprefix(BOOTSTRAP_PREFIX)).read_text()
    assert f"PYTHON={CLUSTER_PYTHON}" in script


def test_cluster_logs_to_the_bootstrap_bucket(synth: Synthesized) -> None:
    log_uri, variables = _cluster(synth)["LogUri"]["Fn::Sub"]
    assert log_uri == "s3://${Bucket}/" + EMR_LOG_PREFIX
    assert "Fn::ImportValue" in variables["Bucket"]


def test_cluster_uses_the_kit_security_configuration_and_roles(synth: Synthesized) -> None:
    cluster = _cluster(synth)
    assert cluster["SecurityConfiguration"] == {
        "Fn::ImportValue": "aik-sagemaker-emr-emr-security-configuration"
    }
    assert cluster["JobFlowRole"] == {"Fn::ImportValue": "aik-sagemaker-emr-emr-instance-profile"}
    assert cluster["ServiceRole"] == {"Fn::ImportValue": "aik-sagemaker-emr-emr-service-role"}


def test_cluster_runs_in_the_kit_private_subnet_with_its_three_groups(synth: Synthesized) -> None:
    instances = _cluster(synth)["Instances"]
    assert instances["Ec2SubnetId"] == {"Fn::ImportValue": "aik-sagemaker-emr-emr-subnet-id"}
    assert {
        instances["EmrManagedMasterSecurityGroup"]["Ref"],
        instances["EmrManagedSlaveSecurityGroup"]["Ref"],
        instances["ServiceAccessSecurityGroup"]["Ref"],
    } == set(synth.resources(PRODUCT, "AWS::EC2::SecurityGroup"))
    assert instances["TerminationProtected"] is False


def test_cluster_and_groups_carry_the_emr_managed_policy_tag(synth: Synthesized) -> None:
    tag = {"Key": EMR_MANAGED_TAG[0], "Value": EMR_MANAGED_TAG[1]}
    assert tag in _cluster(synth)["Tags"]
    for group in synth.resources(PRODUCT, "AWS::EC2::SecurityGroup").values():
        assert tag in group["Properties"]["Tags"]


def test_livy_is_reachable_only_from_studio_on_the_main_node(synth: Synthesized) -> None:
    livy = [
        r for r in _ingress(synth) if r["FromPort"] <= 8998 <= r["ToPort"] and "Fn::ImportValue" in str(r)
    ]
    assert len(livy) == 1
    assert livy[0]["GroupId"] == {"Ref": "MainSecurityGroup"}
    assert livy[0]["SourceSecurityGroupId"] == {
        "Fn::ImportValue": "aik-sagemaker-emr-studio-security-group-id"
    }


def test_studio_reaches_only_livy_on_the_main_node(synth: Synthesized) -> None:
    from_studio = [r for r in _ingress(synth) if "Fn::ImportValue" in r["SourceSecurityGroupId"]]
    assert [(r["GroupId"]["Ref"], r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in from_studio] == [
        ("MainSecurityGroup", "tcp", 8998, 8998)
    ]


def test_no_ingress_rule_admits_an_address_range(synth: Synthesized) -> None:
    for rule in _ingress(synth):
        assert "CidrIp" not in rule and "CidrIpv6" not in rule


def test_service_access_group_admits_the_main_node_on_9443(synth: Synthesized) -> None:
    synth.template(PRODUCT).has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {
            "GroupId": {"Ref": "ServiceSecurityGroup"},
            "SourceSecurityGroupId": {"Ref": "MainSecurityGroup"},
            "FromPort": 9443,
            "ToPort": 9443,
        },
    )


def test_cluster_waits_for_its_ingress_rules(synth: Synthesized) -> None:
    (cluster,) = synth.resources(PRODUCT, "AWS::EMR::Cluster").values()
    assert set(cluster["DependsOn"]) == set(synth.resources(PRODUCT, "AWS::EC2::SecurityGroupIngress"))


def test_product_tag_matches_the_studio_contract() -> None:
    assert STUDIO_VISIBILITY_TAG == ("sagemaker:studio-visibility:emr", "true")


def test_product_template_is_the_product_stack_asset(synth: Synthesized) -> None:
    synth.template("sagemaker-emr").has_resource_properties(
        "AWS::ServiceCatalog::CloudFormationProduct",
        {
            "ProvisioningArtifactParameters": [
                Match.object_like(
                    {
                        "Info": {
                            "LoadTemplateFromURL": Match.object_like(
                                {"Fn::Sub": Match.string_like_regexp(r"\.json$")}
                            )
                        }
                    }
                )
            ]
        },
    )
    assert resolve_join(synth.templates[PRODUCT]["Description"]).startswith("Advertising Intelligence Kit")
