"""What the per-request metrics record costs: the request thread's call and the flusher's share per call.

1. `record_scored` on a `filter` reply (the model's: an `Answer` with its arm's tally) and on the echo's
   (`BidResponse`, no tally), CPU per call (timeit, best of repeats), the aggregator's flusher not
   running; and `record` alone.
2. One flush of the calls of a second at the paced rate (8,000 by default), thread CPU time, to a real
   `statsd` client: the model's calls (two timers: the calls' and the champion's) and the echo's (one),
   to a receiver socket on loopback with the client `statsd_client` makes, and with statsd's default
   512-byte datagrams.

Runs against whichever `filtering_api` / `filtering_server` are importable, so the code before a change
can be measured by the same script (`PYTHONPATH=<old checkout>`, run from outside both checkouts):

    .venv/bin/python bench/bench_metrics.py [--calls 8000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time
import timeit
from typing import Any

import statsd

from filtering_api.idl import BidResponse
from filtering_api.metrics import MetricsAggregator, statsd_client
from filtering_server.__main__ import SERVER_METRICS
from filtering_server.handler import Answer, record_scored


def _per_call_us(stmt: str, namespace: dict[str, Any], number: int = 100_000, repeat: int = 9) -> float:
    """Best of `repeat` timings of `stmt`, in µs per call; the aggregator emptied before each."""
    times = timeit.repeat(stmt, setup="metrics._take()", globals=namespace, number=number, repeat=repeat)
    return min(times) / number * 1e6


def _model_reply() -> Any:
    answer = Answer(likelihoodToBid=0.3)
    answer.tally = (("champion", 1, 0.3),)
    return answer


def request_thread(metrics: MetricsAggregator) -> dict[str, float]:
    """µs per call on the request thread."""
    started = time.perf_counter()
    ns = {"metrics": metrics, "record_scored": record_scored, "started": started}
    tally = _model_reply().tally
    return {
        "record_scored, model reply": _per_call_us(
            "record_scored(metrics, reply, started)", {**ns, "reply": _model_reply()}
        ),
        "record_scored, echo reply": _per_call_us(
            "record_scored(metrics, reply, started)", {**ns, "reply": BidResponse(likelihoodToBid=0.5)}
        ),
        "record, one arm": _per_call_us("metrics.record(1, 0.25, None, tally)", {**ns, "tally": tally}),
    }


def flush_ms(client: Any, calls: int, rounds: int, arms: bool, drain: socket.socket) -> list[float]:
    """Thread CPU ms of each of `rounds` flushes of `calls` recorded calls."""
    metrics = MetricsAggregator(client, SERVER_METRICS, log_interval=1e9)
    tally = _model_reply().tally if arms else ()
    out = []
    for _ in range(rounds):
        for i in range(calls):
            metrics.record(1, 0.1 + i * 1e-5, None, tally)
        start = time.thread_time()
        metrics.flush()
        out.append((time.thread_time() - start) * 1e3)
        try:
            while True:
                drain.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=8000, help="calls per flush (default 8000)")
    parser.add_argument("--rounds", type=int, default=9, help="flushes measured per case (default 9)")
    args = parser.parse_args()
    import filtering_api.metrics

    code = os.path.dirname(os.path.dirname(filtering_api.metrics.__file__))
    print(f"code: {code}; load average {os.getloadavg()[0]:.1f}")
    print("request thread, CPU µs per call (best of 9 x 100,000):")
    for name, us in request_thread(MetricsAggregator(None, SERVER_METRICS)).items():
        print(f"  {name:30s} {us:.3f}")
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
    port = receiver.getsockname()[1]
    clients = {
        "statsd_client (loopback)": statsd_client("127.0.0.1", port, "filtering_server"),
        "512-byte datagrams": statsd.StatsClient("127.0.0.1", port, prefix="filtering_server"),
    }
    print(f"one flush of {args.calls:,} calls, thread CPU ms (median and range of {args.rounds}; per call):")
    for client_name, client in clients.items():
        for kind, arms in (("model", True), ("echo", False)):
            ms = flush_ms(client, args.calls, args.rounds, arms, receiver)
            median = statistics.median(ms)
            print(
                f"  {kind}, {client_name:26s} {median:.2f} ms ({min(ms):.2f}-{max(ms):.2f}); "
                f"{median / args.calls * 1e3:.3f} µs per call"
            )


if __name__ == "__main__":
    main()
