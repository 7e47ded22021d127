"""Soak and fault test: the real server process under mixed good and hostile traffic for a fixed time,
with a model swap and a store fault in the middle, while canary clients check every answer.

Loopback only, bounded in time (SOAK_SECONDS of traffic plus start-up). It asserts no wrong answer and
no failed canary call, bounded memory and threads, and a watcher that is alive and checking at the end;
it prints its figures (run with `-s` to see them; docs/serving.md quotes a run).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import thrift_bytes as tb
from serving_fixtures import Artifacts, publish_booster
from test_serving_swap import other_booster

from ad_server_emulator.emulator import bid_request
from filtering_api.client import connect
from filtering_server.model import ModelSources, load_model, model_version
from filtering_server.process import ServerProcess

SOAK_SECONDS = 15.0
CANARIES = 2
HOARDED = 40  # idle sockets held open by one "client" (the cap below is 64, 8 kept in reserve)
SERVER_ARGS = [
    "--watch-interval", "0.5",
    "--max-connections", "64",
    "--reserve-connections", "8",
    "--read-timeout", "2",
    "--no-metrics",
]  # fmt: skip


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (bytes) and Threads of a process, from /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
        elif key == "Threads":
            out[key] = int(value)
    return out


class Hostile:
    """One thread sending one kind of bad traffic in a loop until stopped; counts what it sent."""

    def __init__(self, port: int, stop: threading.Event, seed: int) -> None:
        self.port = port
        self.stop = stop
        self.rng = np.random.default_rng(seed)
        self.sent: Counter[str] = Counter()
        self.unexpected: list[str] = []

    def sock(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def run(self, kinds: list[str]) -> None:
        while not self.stop.is_set():
            kind = kinds[int(self.rng.integers(len(kinds)))]
            try:
                getattr(self, kind)()
                self.sent[kind] += 1
            except OSError:
                self.sent[kind + " (connection refused or reset)"] += 1
            except Exception as exc:  # a reply we did not expect is a finding
                self.unexpected.append(f"{kind}: {type(exc).__name__}: {exc}")

    def random_bytes(self) -> None:
        with self.sock() as s:
            data = self.rng.integers(0, 256, int(self.rng.integers(1, 400)), dtype=np.uint8).tobytes()
            if self.rng.random() < 0.5:
                data = struct.pack(">i", (tb.VERSION_1 | tb.CALL) - (1 << 32)) + tb.string("filter") + data
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass

    def half_frame(self) -> None:
        call = tb.filter_call(1, tb.bid_request(hour="3", domainId="x" * 50))
        with self.sock() as s:
            s.sendall(call[: int(self.rng.integers(1, len(call)))])

    def huge_batch(self) -> None:
        count = 1_000_000
        args = struct.pack(">bhbi", tb.T_LIST, 1, tb.T_STRUCT, count) + bytes(count) + bytes([tb.T_STOP])
        with self.sock() as s:
            s.sendall(tb.message("filterBatch", 2, args))
            mtype, _, _, body = tb.read_reply(s)
            assert mtype == tb.EXCEPTION and "requests in one batch" in tb.application_exception(body)[0]

    def int_batch(self) -> None:
        args = struct.pack(">bhbi", tb.T_LIST, 1, tb.T_I32, 3) + bytes(12) + bytes([tb.T_STOP])
        with self.sock() as s:
            s.sendall(tb.message("filterBatch", 3, args))
            mtype, _, _, body = tb.read_reply(s)
            assert mtype == tb.EXCEPTION and "list of BidRequest structs" in tb.application_exception(body)[0]

    def long_hour(self) -> None:
        with self.sock() as s:
            s.sendall(tb.filter_call(4, tb.bid_request(hour="7" * 5000)))
            mtype, _, _, body = tb.read_reply(s)
            assert mtype == tb.EXCEPTION and "hour has 5000 digits" in tb.application_exception(body)[0]

    def oversized(self) -> None:
        with self.sock() as s:
            s.sendall(tb.filter_call(5, tb.bid_request(domainId="d" * 20_000_000))[:200_000])
            s.shutdown(socket.SHUT_WR)
            mtype, _, _, body = tb.read_reply(s)
            assert mtype == tb.EXCEPTION and "bad message" in tb.application_exception(body)[0]

    def slowloris(self) -> None:
        call = tb.filter_call(6, tb.bid_request(hour="3"))
        with self.sock() as s:
            for byte in call[:6]:  # paced below the read timeout: never silent for a whole tick
                s.sendall(bytes([byte]))
                time.sleep(0.5)
            mtype, _, _, body = tb.read_reply(s)  # cut at the read timeout
            assert mtype == tb.EXCEPTION and "read timeout" in tb.application_exception(body)[0]


def test_soak_mixed_traffic_with_a_swap_and_a_store_fault(own_artifacts: Artifacts, tmp_path: Path) -> None:
    old = load_model(ModelSources.from_store(own_artifacts.store))
    requests = [bid_request(r) for r in own_artifacts.rows[:300]]
    expected_old = [old.score(r) for r in requests]
    new_booster = other_booster(own_artifacts, seed=31)

    with ServerProcess(
        own_artifacts.settings, extra_args=SERVER_ARGS, log_path=tmp_path / "server.log"
    ) as server:
        pid, port = server.proc.pid, server.port
        start_status = proc_status(pid)
        stop = threading.Event()
        answers: list[tuple[int, float]] = []
        batches: list[tuple[str, list[int], list[float]]] = []
        failures: list[str] = []

        def canary(k: int) -> None:
            client = connect("127.0.0.1", port, 10_000)
            rng = np.random.default_rng(k)
            while not stop.is_set():
                try:
                    if rng.random() < 0.8:
                        j = int(rng.integers(len(requests)))
                        answers.append((j, client.filter(requests[j]).likelihoodToBid))
                    else:
                        picks = rng.integers(0, len(requests), 50).tolist()
                        reply = client.filterBatch([requests[j] for j in picks])
                        batches.append((reply.modelVersion, picks, reply.likelihoodToBid))
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    client = connect("127.0.0.1", port, 10_000)
            client.close()

        hostile = [Hostile(port, stop, seed) for seed in range(4)]
        kinds = [
            ["random_bytes", "half_frame"],
            ["huge_batch", "int_batch", "long_hour"],
            ["oversized", "random_bytes"],
            ["slowloris"],
        ]
        threads = [threading.Thread(target=canary, args=(k,)) for k in range(CANARIES)]
        threads += [threading.Thread(target=h.run, args=(kk,)) for h, kk in zip(hostile, kinds, strict=True)]
        hoard = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(HOARDED)]
        began = time.monotonic()
        for t in threads:
            t.start()

        # a third in: the store breaks (a non-UTF-8 parameter file), then heals with a new model in it
        time.sleep(SOAK_SECONDS / 3)
        store_path = own_artifacts.store.path
        good = store_path.read_bytes()
        store_path.write_bytes(b"\xff" + good)
        time.sleep(2.0)
        store_path.write_bytes(good)
        new_version = model_version(publish_booster(own_artifacts, new_booster))
        time.sleep(max(0.0, SOAK_SECONDS - (time.monotonic() - began)))
        stop.set()
        for t in threads:
            t.join(timeout=30)
        for s in hoard:
            s.close()
        hostile_seconds = time.monotonic() - began

        health_client = connect("127.0.0.1", port, 10_000)
        deadline = time.monotonic() + 30
        while health_client.health().modelVersion != new_version and time.monotonic() < deadline:
            time.sleep(0.2)
        health = health_client.health()
        health_client.close()
        deadline = time.monotonic() + 15  # the hostile connections' threads end (linger, timeouts)
        while proc_status(pid)["Threads"] > start_status["Threads"] + 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        end_status = proc_status(pid)
        log_lines = (tmp_path / "server.log").read_text().splitlines()

    new = load_model(ModelSources.from_store(own_artifacts.store))
    expected_new = [new.score(r) for r in requests]
    expected = {old.version: expected_old, new.version: expected_new}
    wrong = [(j, v) for j, v in answers if v not in (expected_old[j], expected_new[j])]
    wrong_batches = [b for b in batches if b[0] not in expected or b[2] != [expected[b[0]][j] for j in b[1]]]
    figures = {
        "seconds": round(hostile_seconds, 1),
        "load_average": os.getloadavg(),
        "canary_calls": len(answers) + len(batches),
        "canary_requests_scored": len(answers) + 50 * len(batches),
        "canary_failures": len(failures),
        "wrong_answers": len(wrong) + len(wrong_batches),
        "hostile": dict(sum((h.sent for h in hostile), Counter())),
        "hoarded_idle_sockets": HOARDED,
        "rss_mb": {
            "start": round(start_status["VmRSS"] / 2**20),
            "peak": round(end_status["VmHWM"] / 2**20),
            "end": round(end_status["VmRSS"] / 2**20),
        },
        "threads": {"start": start_status["Threads"], "end": end_status["Threads"]},
        "model": f"{old.version} -> {health.modelVersion}",
        "model_check_age_s": round(health.modelCheckAgeSeconds, 2),
        "log_lines": len(log_lines),
    }
    print("soak figures:", json.dumps(figures))
    assert failures == []
    assert wrong == [] and wrong_batches == []
    assert [u for h in hostile for u in h.unexpected] == []
    assert len(answers) > 0 and len(batches) > 0
    assert health.ready and health.modelVersion == new_version  # the watcher survived the fault
    assert 0.0 <= health.modelCheckAgeSeconds < 5.0  # and is still checking
    assert end_status["VmHWM"] - start_status["VmRSS"] < 400 * 2**20  # bounded memory
    assert end_status["Threads"] <= start_status["Threads"] + 2  # every hostile connection ended
    assert len(log_lines) < 200  # rate-limited warnings, not one per bad message
