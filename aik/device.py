"""User agent -> `device_type_id`: the one function the Spark job and the server both call."""

from __future__ import annotations

from functools import lru_cache

import woothee

#: woothee category -> device_type_id; anything else (woothee's "UNKNOWN", missing) is UNKNOWN_DEVICE.
DEVICE_TYPES: dict[str, int] = {
    "smartphone": 0,
    "mobilephone": 1,
    "appliance": 2,
    "pc": 3,
    "crawler": 4,
    "misc": 5,
}
UNKNOWN_DEVICE = 6
NUM_DEVICE_TYPES = 7


# Real traffic repeats a few thousand agents; the cache turns woothee's parse into a dict hit.
@lru_cache(maxsize=65536)
def _category_id(user_agent: str) -> int:
    return DEVICE_TYPES.get(woothee.parse(user_agent).get("category", ""), UNKNOWN_DEVICE)


def device_type_id(user_agent: str | None) -> int:
    """The device type of a user agent (woothee category id, 6 for unknown, empty or missing)."""
    if not user_agent or user_agent == "null":
        return UNKNOWN_DEVICE
    return _category_id(user_agent)
