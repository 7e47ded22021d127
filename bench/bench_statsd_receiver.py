"""How many StatsD datagrams per second the local receiver keeps up with, against a bare UDP reader.

A separate sender process sends the four dashboard metrics exactly as the filtering server and the
emulator do (one metric per datagram, as `statsd.StatsClient` sends them). Two receivers are measured in
the same run with the same sender: the baseline, a thread that only reads and counts datagrams (the most
any Python UDP reader could do here), and `aik.monitoring.StatsdReceiver` (read, parse, aggregate, write).

1. flood: the sender sends as fast as it can; figures: datagrams/s received and the share delivered.
2. paced: the sender holds a target rate (default 10k, 20k and 40k datagrams/s) for a few seconds;
   figures: the rate achieved, datagrams lost (sent - received; the kernel's drop count besides) and
   the CPU the reading process used (share of one core).

    .venv/bin/python bench/bench_statsd_receiver.py [--seconds 5] [--rates 10000,20000,40000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

from aik.dashboard import WIDGETS
from aik.monitoring.receiver import (
    POLL_S,
    RECEIVE_BUFFER,
    StatsdReceiver,
    kernel_drops_of,
    set_receive_timeout,
)

DATAGRAMS = [
    f"{spec.statsd_name}:{value}|{kind}".encode()
    for spec, value, kind in (
        (WIDGETS[1].metrics[0], "1", "c"),  # filtering_server.filtering_count
        (WIDGETS[0].metrics[1], "0.412345", "ms"),  # filtering_server.filtering_latency
        (WIDGETS[0].metrics[0], "0.812345", "ms"),  # adserver_client.adserver_latency_ms
        (WIDGETS[2].metrics[0], "0.1234", "g"),  # adserver_client.likelihood_to_bid
    )
]


def send(port: int, count: int, rate: float | None, result: mp.Queue) -> None:  # type: ignore[type-arg]
    """Send `count` datagrams to 127.0.0.1:port, paced at `rate` per second (None: as fast as possible)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    payloads = DATAGRAMS
    batch = 200
    start = time.perf_counter()
    for i in range(0, count, batch):
        for j in range(i, min(i + batch, count)):
            sock.send(payloads[j & 3])
        if rate:
            ahead = (i + batch) / rate - (time.perf_counter() - start)
            if ahead > 0:
                time.sleep(ahead)
    result.put(time.perf_counter() - start)


class BareReader:
    """The baseline: read and count datagrams in a thread, nothing else."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.sock.bind(("127.0.0.1", 0))
        set_receive_timeout(self.sock, POLL_S)  # as the receiver does: one system call per read
        self.port = self.sock.getsockname()[1]
        self.datagrams = 0
        self.kernel_drops: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> BareReader:
        self._thread.start()
        return self

    def _run(self) -> None:
        recv = self.sock.recv
        while not self._stop.is_set():
            try:
                recv(65535)
            except (TimeoutError, BlockingIOError):
                continue
            self.datagrams += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.kernel_drops = kernel_drops_of(self.sock)
        self.sock.close()


def run_one(kind: str, count: int, rate: float | None, workdir: Path) -> dict[str, float]:
    """One sender run against one receiver kind; returns the figures."""
    if kind == "baseline":
        reader = BareReader().start()
        port, seen = reader.port, lambda: reader.datagrams
    else:
        receiver = StatsdReceiver(workdir / "metrics.jsonl", port=0).start()
        port, seen = receiver.port, lambda: receiver.stats.datagrams
    result: mp.Queue[float] = mp.Queue()
    sender = mp.Process(target=send, args=(port, count, rate, result))
    start, cpu_start = time.perf_counter(), time.process_time()
    sender.start()
    sent_in = result.get()
    sender.join()
    # Received everything, or nothing new for half a second: the rest was lost.
    last, last_at = -1, time.perf_counter()
    while seen() < count and time.perf_counter() - last_at < 0.5:
        now_seen = seen()
        if now_seen != last:
            last, last_at = now_seen, time.perf_counter()
        time.sleep(0.002)
    received_in = (time.perf_counter() if seen() >= count else last_at) - start
    # This process holds only the reader thread and this waiting loop (the sender is another process).
    cpu = (time.process_time() - cpu_start) / received_in
    if kind == "baseline":
        reader.stop()
        received, drops = reader.datagrams, reader.kernel_drops
    else:
        stats = receiver.stop()
        received, drops = stats.datagrams, stats.kernel_drops
    return {
        "sent_per_s": count / sent_in,
        "received": received,
        "received_per_s": received / received_in,
        "lost": count - received,
        "kernel_drops": -1 if drops is None else drops,
        "cpu": cpu,
    }


def _row(label: str, figures: dict[str, float]) -> str:
    share = 100 * figures["lost"] / max(figures["received"] + figures["lost"], 1)
    return (
        f"{label:<34} sent {figures['sent_per_s']:>9,.0f}/s  received {figures['received_per_s']:>9,.0f}/s"
        f"  lost {figures['lost']:>7,.0f} ({share:.2f} %)"
        f"  kernel drops {figures['kernel_drops']:,.0f}  reader CPU {100 * figures['cpu']:.0f} % of a core"
    )


def main() -> int:
    """Run the flood and paced measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each paced run")
    parser.add_argument("--rates", default="10000,20000,40000", help="paced rates, datagrams/s")
    parser.add_argument("--flood", type=int, default=200_000, help="datagrams in the flood run")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r]
    with TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print(f"flood: {args.flood:,} datagrams as fast as one sender process can send")
        base = run_one("baseline", args.flood, None, workdir)
        recv = run_one("receiver", args.flood, None, workdir)
        print(_row("  baseline (bare UDP reader)", base))
        print(_row("  StatsdReceiver", recv))
        print(f"  receiver/baseline throughput ratio: {recv['received_per_s'] / base['received_per_s']:.2f}")
        for rate in rates:
            count = int(rate * args.seconds)
            print(f"paced: {rate:,.0f} datagrams/s for {args.seconds:g} s ({count:,} datagrams)")
            figures: dict[str, Callable[[], dict[str, float]]] = {
                "  baseline (bare UDP reader)": lambda c=count, r=rate: run_one("baseline", c, r, workdir),
                "  StatsdReceiver": lambda c=count, r=rate: run_one("receiver", c, r, workdir),
            }
            for label, measure in figures.items():
                print(_row(label, measure()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
