"""The deployment settings read from CDK context."""

from __future__ import annotations

import aws_cdk as cdk
import pytest

from stacks.config import KitConfig


def test_defaults_destroy_data_and_run_no_emulator() -> None:
    config = KitConfig.from_context({})
    assert config == KitConfig()
    assert config.removal_policy == cdk.RemovalPolicy.DESTROY
    assert config.emulator is False


def test_default_service_runs_a_task_per_az_and_may_scale_to_four() -> None:
    assert (KitConfig().min_tasks, KitConfig().max_tasks) == (2, 4)


def test_context_strings_become_typed_settings() -> None:
    config = KitConfig.from_context(
        {
            "aik:retain-data": "true",
            "aik:nat-gateways": "2",
            "aik:max-tasks": "6",
            "aik:emulator": "true",
            "aik:latency-alarm-ms": "12.5",
        }
    )
    assert (
        config.retain_data,
        config.nat_gateways,
        config.max_tasks,
        config.emulator,
        config.latency_alarm_ms,
    ) == (True, 2, 6, True, 12.5)
    assert config.removal_policy == cdk.RemovalPolicy.RETAIN


def test_the_loops_window_and_landing_prefix_come_from_context() -> None:
    loop = KitConfig.from_context(
        {"aik:loop-window-days": "14", "aik:loop-test-days": "2", "aik:loop-ingest-prefix": "landing/"}
    ).loop
    assert (loop.window_days, loop.test_days, loop.ingest_prefix) == (14, 2, "landing/")
    assert (KitConfig().loop.window_days, KitConfig().loop.test_days) == (7, 1)


def test_json_context_values_are_accepted() -> None:
    assert KitConfig.from_context({"aik:retain-data": False, "aik:max-tasks": 3}).max_tasks == 3


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("aik:retain-data", "maybe", "true or false"),
        ("aik:max-tasks", "many", "invalid literal"),
        ("aik:min-tasks", "0", "at least 1"),
        ("aik:max-tasks", "1", "at least min_tasks"),
        ("aik:emulator", "sometimes", "true or false"),
        ("aik:nat-gateways", "3", "1 or 2"),
        ("aik:latency-alarm-ms", "-1", "positive"),
        ("aik:log-retention-days", "31", "one of"),
        ("aik:loop-window-days", "0", "at least one training and one test day"),
        ("aik:loop-test-days", "none", "invalid literal"),
        ("aik:loop-ingest-prefix", "raw/ipinyou-data/new/", "outside raw/ipinyou-data/"),
    ],
)
def test_bad_context_values_are_refused_with_the_key(key: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KitConfig.from_context({key: value})
