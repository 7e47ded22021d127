"""The deployment settings read from CDK context."""

from __future__ import annotations

import aws_cdk as cdk
import pytest

from stacks.config import KitConfig


def test_defaults_destroy_data_and_leave_scaling_off() -> None:
    config = KitConfig.from_context({})
    assert config == KitConfig()
    assert config.removal_policy == cdk.RemovalPolicy.DESTROY
    assert config.max_tasks == 1


def test_context_strings_become_typed_settings() -> None:
    config = KitConfig.from_context(
        {
            "aik:retain-data": "true",
            "aik:nat-gateways": "2",
            "aik:max-tasks": "4",
            "aik:latency-alarm-ms": "12.5",
        }
    )
    assert (config.retain_data, config.nat_gateways, config.max_tasks, config.latency_alarm_ms) == (
        True,
        2,
        4,
        12.5,
    )
    assert config.removal_policy == cdk.RemovalPolicy.RETAIN


def test_json_context_values_are_accepted() -> None:
    assert KitConfig.from_context({"aik:retain-data": False, "aik:max-tasks": 2}).max_tasks == 2


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("aik:retain-data", "maybe", "true or false"),
        ("aik:max-tasks", "many", "invalid literal"),
        ("aik:max-tasks", "0", "at least 1"),
        ("aik:nat-gateways", "3", "1 or 2"),
        ("aik:latency-alarm-ms", "-1", "positive"),
        ("aik:log-retention-days", "31", "one of"),
    ],
)
def test_bad_context_values_are_refused_with_the_key(key: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KitConfig.from_context({key: value})
