"""Local monitoring: a StatsD receiver standing in for the CloudWatch agent, and the dashboard rendered
from what it received (the same widgets as the CloudWatch `Monitoring-Dashboard`: four, then one per
experiment arm's metric).

    with StatsdReceiver("metrics.jsonl", port=0) as receiver:   # background thread, 10-s windows
        ...  # point the server and emulator at 127.0.0.1:receiver.port
    result = render_dashboard("metrics.jsonl", "out/")          # dashboard.png + dashboard.html
    print("\\n".join(result.summary.lines() + result.summary.arm_lines()))

`python -m aik.monitoring receive|render|summary` does the same from a shell.
"""

from aik.monitoring.protocol import Sample, StatsdParseError, parse_line
from aik.monitoring.receiver import ReceiverStats, StatsdReceiver
from aik.monitoring.windows import WindowAggregator, WindowRecord

__all__ = [
    "ReceiverStats",
    "Sample",
    "StatsdParseError",
    "StatsdReceiver",
    "WindowAggregator",
    "WindowRecord",
    "parse_line",
]
