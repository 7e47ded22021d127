"""The shared user-agent -> device_type_id function."""

from __future__ import annotations

import pytest

from aik.device import UNKNOWN_DEVICE, device_type_id


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 6_1 like Mac OS X) AppleWebKit/536.26 Mobile/10B141", 0),
        ("DoCoMo/2.0 P903i(c100;TB;W24H12)", 1),
        ("Mozilla/5.0 (PlayStation Vita 1.81) AppleWebKit/531.22.8 (KHTML, like Gecko) Silk/3.2", 2),
        ("Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0)", 3),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 4),
        ("Wget/1.12 (linux-gnu)", 5),
        ("something nobody has ever seen", UNKNOWN_DEVICE),
        ("", UNKNOWN_DEVICE),
        ("null", UNKNOWN_DEVICE),
        (None, UNKNOWN_DEVICE),
    ],
)
def test_device_type_id_follows_woothee_categories(agent: str | None, expected: int) -> None:
    assert device_type_id(agent) == expected
