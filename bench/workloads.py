"""Workloads on a real local crew: submissions, round trips, latencies and throughput."""

import asyncio
import random
import resource
import statistics
import subprocess
import threading
import time
from pathlib import Path

import msgspec
import psutil

from bench.figures import Figure, percentile
from bench.http import Connection
from bench.local import CAPTAIN, HELD_SERVICE, LocalCrew, LogTail, write_script

ANSWER_TIMEOUT_S = 30.0


# --- submissions ----------------------------------------------------------------------------


def chore_body(script: Path, service: str) -> bytes:
    return msgspec.json.encode({"script": str(script), "service": service})


async def _http_submitters(crew: LocalCrew, body: bytes, n: int, submitters: int,
                           deadline_s: float) -> tuple[int, list[str], float]:
    """Sends `n` chore requests over `submitters` connections; returns answered, ids, time."""
    shares = [n // submitters + (1 if i < n % submitters else 0) for i in range(submitters)]
    ids: list[str] = []
    errors: list[str] = []

    async def one_submitter(count: int) -> None:
        connection = Connection("127.0.0.1", crew.port)
        try:
            for _ in range(count):
                if time.monotonic() >= deadline_at:
                    return
                status, data = await asyncio.wait_for(
                    connection.request("POST", "/user_chore", body), ANSWER_TIMEOUT_S)
                if status != 201:
                    errors.append(data[:200].decode(errors="replace"))
                    return
                ids.append(msgspec.json.decode(data)["chore_id"])
        finally:
            await connection.close()

    started = time.monotonic()
    deadline_at = started + deadline_s
    await asyncio.gather(*(one_submitter(c) for c in shares))
    elapsed_s = time.monotonic() - started
    if errors:
        raise RuntimeError(f"a submission was refused: {errors[0]}")
    return len(ids), ids, elapsed_s


def http_submit_rate(crew: LocalCrew, script: Path, n: int, submitters: int,
                     service: str = HELD_SERVICE, deadline_s: float = 60.0) -> Figure:
    """Chores answered per second through the HTTP API, each answer after its fsync."""
    answered, ids, elapsed_s = asyncio.run(
        _http_submitters(crew, chore_body(script, service), n, submitters, deadline_s))
    logged = {e["chore_id"] for e in crew.events() if e["type"] == "ChoreRequested"}
    missing = len(set(ids) - logged)
    note = f"{answered} of {n} answered"
    if missing:
        note += f"; {missing} answered but NOT in the log"
    return Figure(name=f"submit_rate.http[{submitters}]", value=answered / elapsed_s,
                  unit="chores/s", note=note)


def _cli(*args: str, timeout_s: float = ANSWER_TIMEOUT_S) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([CAPTAIN, *args], capture_output=True, stdin=subprocess.DEVNULL,
                          timeout=timeout_s)


def cli_submit_rate(crew: LocalCrew, script: Path, n: int, submitters: int,
                    deadline_s: float = 60.0) -> Figure:
    """Chores answered per second when each one is a `captain --chore` process."""
    shares = [n // submitters + (1 if i < n % submitters else 0) for i in range(submitters)]
    answered = [0] * submitters
    words = (f"script={script}", f"service={HELD_SERVICE}", "--port", str(crew.port), "--json")

    def submit_loop(index: int) -> None:
        for _ in range(shares[index]):
            if time.monotonic() >= deadline_at:
                return
            if _cli("--chore", *words).returncode == 0:
                answered[index] += 1

    threads = [threading.Thread(target=submit_loop, args=(i,)) for i in range(submitters)]
    started = time.monotonic()
    deadline_at = started + deadline_s
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed_s = time.monotonic() - started
    return Figure(name=f"submit_rate.cli[{submitters}]", value=sum(answered) / elapsed_s,
                  unit="chores/s", note=f"{sum(answered)} of {n} answered")


def cli_round_trips(crew: LocalCrew, script: Path, reps: int) -> list[Figure]:
    """Median wall time of one CLI command, from the start of its process to its exit."""
    port = ("--port", str(crew.port))
    commands = {
        "round_trip_ms.cli_chore": ("--chore", f"script={script}", f"service={HELD_SERVICE}",
                                    *port, "--json"),
        "round_trip_ms.cli_consult": ("--consult", *port, "--json"),
        "round_trip_ms.cli_consult_table": ("--consult", *port),
    }
    figures = []
    for name, args in commands.items():
        samples_ms = []
        cpu_before = _children_cpu_s()
        for _ in range(reps):
            started = time.perf_counter()
            done = _cli(*args)
            samples_ms.append((time.perf_counter() - started) * 1000)
            if done.returncode != 0:
                raise RuntimeError(f"captain {' '.join(args)} failed: {done.stderr[:300]!r}")
        cpu_ms = (_children_cpu_s() - cpu_before) / reps * 1000
        figures.append(Figure(name=name, value=statistics.median(samples_ms), unit="ms",
                              note=f"median of {reps}; the process used {cpu_ms:.0f} ms of CPU"))
    return figures


# --- latencies ------------------------------------------------------------------------------

# The start is stamped by the script's first command, as Slurm's job stamps it ("${0%/*}" is
# the script's folder, found without starting a process).
STAMP = """date +%s.%N >"${0%/*}/start-$CAPTAIN_CHORE_ID"
date +%s.%N >"${0%/*}/end-$CAPTAIN_CHORE_ID"
"""


def _wait_ended(tail: LogTail, chore_id: str, ended: dict[str, float], timeout_s: float
                ) -> float | None:
    deadline = time.monotonic() + timeout_s
    while chore_id not in ended and time.monotonic() < deadline:
        for event in tail.read():
            if event["type"] == "ChoreEnded":
                ended[event["chore_id"]] = event["at"]
        time.sleep(0.005)
    return ended.get(chore_id)


def _submit_one_http(crew: LocalCrew, body: bytes) -> str:
    async def once() -> str:
        connection = Connection("127.0.0.1", crew.port)
        try:
            status, data = await connection.request("POST", "/user_chore", body)
        finally:
            await connection.close()
        if status != 201:
            raise RuntimeError(f"submission refused: {data[:200]!r}")
        return str(msgspec.json.decode(data)["chore_id"])
    return asyncio.run(once())


def _submit_one_cli(crew: LocalCrew, script: Path, service: str) -> str:
    done = _cli("--chore", f"script={script}", f"service={service}", "--port", str(crew.port),
                "--json")
    if done.returncode != 0:
        raise RuntimeError(f"captain --chore failed: {done.stdout[:300]!r}")
    return str(msgspec.json.decode(done.stdout)["chore_id"])


def latencies(crew: LocalCrew, folder: Path, reps: int, cli_reps: int,
              service: str = "cpu") -> list[Figure]:
    """Submit-to-start (through the API and the CLI) and end-seen, one chore at a time."""
    script = write_script(folder, "stamp.sh", STAMP)
    tail = LogTail(crew)
    ended: dict[str, float] = {}
    samples: dict[str, list[float]] = {"api": [], "cli": [], "end": []}
    missed = 0
    for index in range(reps + cli_reps):
        time.sleep(random.uniform(0.05, 0.15))
        how = "api" if index < reps else "cli"
        submitted_at = time.time()
        if how == "api":
            chore_id = _submit_one_http(crew, chore_body(script, service))
        else:
            chore_id = _submit_one_cli(crew, script, service)
        seen_at = _wait_ended(tail, chore_id, ended, 30)
        start_path, end_path = folder / f"start-{chore_id}", folder / f"end-{chore_id}"
        if seen_at is None or not end_path.exists():
            missed += 1
            continue
        samples[how].append((float(start_path.read_text()) - submitted_at) * 1000)
        samples["end"].append((seen_at - float(end_path.read_text())) * 1000)
    note = f"{len(samples['api'])} samples" + (f", {missed} missed" if missed else "")
    return [
        Figure(name="submit_to_start_ms.api.p50", value=percentile(samples["api"], 0.5),
               unit="ms", note=note),
        Figure(name="submit_to_start_ms.api.p95", value=percentile(samples["api"], 0.95),
               unit="ms"),
        Figure(name="submit_to_start_ms.cli.p50", value=percentile(samples["cli"], 0.5),
               unit="ms", note=f"{len(samples['cli'])} samples, CLI process included"),
        Figure(name="end_seen_ms.p50", value=percentile(samples["end"], 0.5), unit="ms",
               note="chore's last instruction to the captain's ChoreEnded record"),
        Figure(name="end_seen_ms.p95", value=percentile(samples["end"], 0.95), unit="ms"),
    ]


# --- throughput -----------------------------------------------------------------------------


def throughput(crew: LocalCrew, folder: Path, n: int, deadline_s: float) -> list[Figure]:
    """Trivial chores completed per second, end to end, over the crew's sailors."""
    script = write_script(folder, "true.sh", "exit 0\n")
    tail = LogTail(crew)
    tail.read()
    captain = psutil.Process(crew.captain_pid)
    cpu_before = _cpu_s(captain)
    started = time.monotonic()
    _, ids, _ = asyncio.run(_http_submitters(crew, chore_body(script, "cpu"), n, 4, deadline_s))
    wanted = set(ids)
    statuses: dict[str, str] = {}
    deadline = started + deadline_s
    while len(statuses) < len(wanted) and time.monotonic() < deadline:
        for event in tail.read():
            if event["type"] == "ChoreEnded" and event["chore_id"] in wanted:
                statuses[event["chore_id"]] = event["status"]
        time.sleep(0.02)
    elapsed_s = time.monotonic() - started
    cpu_share = (_cpu_s(captain) - cpu_before) / elapsed_s
    done = sum(1 for s in statuses.values() if s == "done")
    note = f"{done} of {n} done over {len(crew.processes) - 1} sailors"
    if len(statuses) < len(wanted):
        note += f"; {len(wanted) - len(statuses)} unfinished at the deadline"
    return [
        Figure(name=f"throughput[{n}]", value=done / elapsed_s, unit="chores/s", note=note),
        Figure(name="throughput.captain_cpu", value=cpu_share, unit="cores",
               note="the captain's own CPU time over the run"),
    ]


def _children_cpu_s() -> float:
    """CPU time of this process's ended children: what the CLI itself used, load aside."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)
