"""The ingestion service on loopback, beside a no-op FastAPI endpoint that only parses the body.

Both servers run as one uvicorn process (httptools + uvloop) in a child process; the load
generators (httpx for batches, `loadgen`'s lean open loop for single events, in this process)
share the machine's 2 cores with it, so the numbers are a floor for both and the ratio is what
matters. Throughput and latency are measured in interleaved rounds and each server's median
taken, so a drift in the machine's speed (shared cores) hits both alike. Also the SDK's cost on
the caller's thread.

Single-event rounds last 7 s at full size: the service seals once the oldest unsealed row is 5 s
old (its default), so every round starts from a sealed journal (the throughput rounds' backlog
drained) and takes one seal at the rate it measures, the cost a steady stream pays.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec

from benchmarks.common import Result, event
from benchmarks.loadgen import open_loop

REVEALED = str(Path(sys.executable).with_name("revealed"))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str) -> None:
    for _ in range(300):
        try:
            httpx.post(url, content=b"", headers={"content-type": "application/x-ndjson"}, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(url)


def _start(kind: str, data: Path, workers: int = 1) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    if kind == "revealed":
        cmd = [REVEALED, "--data", str(data), "serve", "--port", str(port), "--log-level", "warning"]
        cmd += ["--workers", str(workers)]
    else:
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.noop_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--workers",
            str(workers),
        ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1/events"
    _wait(url)
    return proc, url


#: batches handed out so far in this process: every call sends events never sent before
_BATCHES = itertools.count()
#: ids of single events, far from the batches'
_SINGLES = itertools.count(9 * 10**8)


def _body(batch: int = 1000) -> bytes:
    """An NDJSON body of `batch` events never sent before."""
    start = next(_BATCHES) * batch
    return b"".join(msgspec.json.encode(event(start + i)) + b"\n" for i in range(batch))


def _throughput(
    url: str, seconds: float, batch: int = 1000, threads: int = 2, bodies: Iterator[bytes] | None = None
) -> float:
    """Events/s of new events in `batch`-line NDJSON bodies from `threads` closed-loop clients.

    Each client builds its next body before sending it, unless `bodies` (built beforehand) are
    given: then the clients take them in turn until the time or the bodies run out. Every body
    must come back fully accepted: a benchmark that resent ids to revealed would time the
    duplicate path (warm-up and earlier rounds included)."""
    counter = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < deadline:
                if bodies is None:
                    body = _body(batch)
                else:
                    with lock:
                        body = next(bodies, b"")
                    if not body:
                        return
                r = client.post(url, content=body, headers={"content-type": "application/x-ndjson"})
                r.raise_for_status()
                accepted = msgspec.json.decode(r.content)["accepted"]
                if accepted != batch:
                    raise AssertionError(f"{url}: {accepted} of {batch} new events accepted")
                with lock:
                    counter[0] += batch

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    began = time.monotonic()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return counter[0] / (time.monotonic() - began)


def _prebuilt(kind: str, seconds: float) -> Iterator[bytes]:
    """Bodies built before a round: fresh ones for revealed (more than it can take in `seconds`),
    a few sent over and over to the no-op (which only parses them)."""
    if kind == "noop":
        return itertools.cycle([_body() for _ in range(64)])
    return iter([_body() for _ in range(int(seconds * 300))])


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process and its live child processes (uvicorn's workers)
    have used so far, all their threads."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:  # exited meanwhile
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children = [int(child) for child in f.read().split()]
        except FileNotFoundError:
            continue
        total += sum(_cpu_s(child) for child in children)
    return total


def _drain(url: str, timeout_s: float = 120.0) -> None:
    """Wait until the server has sealed its journal (the no-op has none): the latency is measured
    at a steady rate, not while the sealer works off the throughput test's backlog."""
    metrics = url.replace("/v1/events", "/metrics")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = httpx.get(metrics, timeout=10)
        if response.status_code != 200:
            return  # no journal gauge (the no-op)
        unsealed = [
            float(line.rsplit(" ", 1)[1])
            for line in response.text.splitlines()
            if line.startswith("revealed_journal_unsealed_rows{")
        ]
        if not any(unsealed):
            return
        time.sleep(0.5)


def _latency(url: str, rate: float, seconds: float) -> tuple[float, float, int]:
    """p50 and p99 in ms of single-event POSTs sent on a fixed schedule (open loop, `loadgen`),
    and how many failed or found no free connection."""
    latencies = open_loop(
        url,
        lambda _: msgspec.json.encode(event(next(_SINGLES))),
        rate=rate,
        seconds=seconds,
        content_type="application/json",
    )
    return latencies.quantile(0.5), latencies.quantile(0.99), latencies.failed


def _sdk_cost(n: int = 200_000) -> tuple[float, float]:
    from revealed.sdk import Client

    def server(request: httpx.Request) -> httpx.Response:
        k = request.content.count(b"\n")
        return httpx.Response(
            200,
            json={
                "accepted": k,
                "duplicate": 0,
                "conflict": 0,
                "rejected": 0,
                "statuses": ["accepted"] * k,
                "errors": {},
            },
        )

    samples = []
    with Client("http://bench.test", transport=httpx.MockTransport(server)) as client:
        clock = time.perf_counter_ns
        for i in range(n):
            start = clock()
            client.log_event("click", user_id="u1", item_id="sku-7", decision_id="d1")
            samples.append(clock() - start)
            if i % 1000 == 0:
                time.sleep(0)
    samples.sort()
    return samples[len(samples) // 2] / 1e3, samples[int(len(samples) * 0.99)] / 1e3


def _turns(r: int) -> tuple[str, str]:
    """Which server goes first in round `r`: they alternate, so neither always follows the other."""
    return ("noop", "revealed") if r % 2 == 0 else ("revealed", "noop")


def _rounds(
    servers: dict[str, tuple[subprocess.Popen[bytes], str]],
    seconds: float,
    rounds: int,
    threads: int,
    prebuilt: bool = False,
) -> tuple[dict[str, float], dict[str, float]]:
    """Each server's median events/s and server CPU per event over interleaved rounds.

    The machine's speed drifts (shared cores), so the servers take turns; a round starts only once
    revealed has sealed its backlog, and its CPU counts sealing the round's events (read from
    /proc for the server process and its workers). With `prebuilt`, the bodies
    are built before each round, so the clients only send them (`_prebuilt`)."""
    urls = {kind: url for kind, (_, url) in servers.items()}
    for url in urls.values():
        _throughput(url, 1.0, threads=threads)  # warm up
    rates: dict[str, list[float]] = {kind: [] for kind in urls}
    costs: dict[str, list[float]] = {kind: [] for kind in urls}
    for r in range(rounds):
        for kind in _turns(r):
            bodies = _prebuilt(kind, seconds) if prebuilt else None
            _drain(urls["revealed"])
            before = _cpu_s(servers[kind][0].pid)
            rates[kind].append(_throughput(urls[kind], seconds, threads=threads, bodies=bodies))
            _drain(urls["revealed"])
            costs[kind].append((_cpu_s(servers[kind][0].pid) - before) / (rates[kind][-1] * seconds))
    return (
        {kind: statistics.median(v) for kind, v in rates.items()},
        {kind: statistics.median(v) for kind, v in costs.items()},
    )


def _latency_rounds(
    servers: dict[str, tuple[subprocess.Popen[bytes], str]], rate: float, seconds: float, rounds: int
) -> dict[str, tuple[float, float, int]]:
    """Each server's median p50 and p99 over interleaved rounds of `_latency`, and its failed
    requests summed: a p99 of a few hundred requests is the third-slowest, so one stall of the
    shared machine would decide it."""
    samples: dict[str, list[tuple[float, float, int]]] = {kind: [] for kind in servers}
    for r in range(rounds):
        for kind in _turns(r):
            _drain(servers["revealed"][1])
            samples[kind].append(_latency(servers[kind][1], rate, seconds))
    return {
        kind: (
            statistics.median(p50 for p50, _, _ in v),
            statistics.median(p99 for _, p99, _ in v),
            sum(failed for _, _, failed in v),
        )
        for kind, v in samples.items()
    }


def _stop(servers: dict[str, tuple[subprocess.Popen[bytes], str]]) -> None:
    for proc, _ in servers.values():
        proc.terminate()
        proc.wait(30)


def run(n: int) -> list[Result]:
    tmp = Path(tempfile.mkdtemp(prefix="revealed-bench-svc-"))
    seconds, rounds = (3.0, 4) if n >= 100_000 else (2.0, 2)
    single_seconds = 7.0 if n >= 100_000 else 2.0  # > the default seal lag, see the docstring
    #: single-event rates: a steady trickle, half the issue's example, and the example itself
    single_rates = (200.0, 1000.0, 2000.0)
    results = []
    servers = {kind: _start(kind, tmp / kind) for kind in ("noop", "revealed")}
    try:
        rates, costs = _rounds(servers, seconds, rounds, threads=2)
        latencies = {rate: _latency_rounds(servers, rate, single_seconds, rounds) for rate in single_rates}
    finally:
        _stop(servers)
    # one worker per core, and enough clients to keep both busy
    servers = {kind: _start(kind, tmp / f"{kind}-2", workers=2) for kind in ("noop", "revealed")}
    try:
        scaled, _ = _rounds(servers, seconds, rounds, threads=8)
        unloaded, unloaded_costs = _rounds(servers, seconds, rounds, threads=8, prebuilt=True)
    finally:
        _stop(servers)
    ours, base = rates["revealed"], rates["noop"]
    results.append(
        Result(
            "HTTP ingest, 1,000-event NDJSON batches, durable",
            ours,
            "events/s",
            "no-op FastAPI endpoint parsing the same body",
            base,
            aim=0.5,
        )
    )
    results.append(
        Result(
            "server CPU per event under that load, sealing included (ratio = ours/baseline)",
            costs["revealed"] * 1e6,
            "us",
            "no-op server",
            costs["noop"] * 1e6,
        )
    )
    results.append(
        Result(
            "the same with --workers 2 for both servers and 8 clients",
            scaled["revealed"],
            "events/s",
            "no-op FastAPI endpoint, 2 workers",
            scaled["noop"],
            aim=0.5,
        )
    )
    results.append(
        Result(
            "the same, bodies built before each round (the clients only send)",
            unloaded["revealed"],
            "events/s",
            "no-op FastAPI endpoint, 2 workers",
            unloaded["noop"],
        )
    )
    results.append(
        Result(
            "server CPU per event in that configuration, both workers (ratio = ours/baseline)",
            unloaded_costs["revealed"] * 1e6,
            "us",
            "no-op server, 2 workers",
            unloaded_costs["noop"] * 1e6,
        )
    )
    for rate, measured in latencies.items():
        (p50, p99, failed), (b50, b99, b_failed) = measured["revealed"], measured["noop"]
        results.append(
            Result(
                f"single-event POST p99 at {rate:,.0f} req/s, median of {rounds} interleaved "
                f"{single_seconds:.0f} s rounds "
                f"(ratio = ours/baseline, aim <= 3; failed: ours {failed}, no-op {b_failed})",
                p99,
                "ms",
                f"no-op p99 (p50 {b50:.2f} ms; ours p50 {p50:.2f} ms)",
                b99,
            )
        )
    p50_us, p99_us = _sdk_cost()
    results.append(Result(f"SDK log_event on the caller's thread: p50 {p50_us:.1f} us", p99_us, "us p99"))
    shutil.rmtree(tmp, ignore_errors=True)

    return results
