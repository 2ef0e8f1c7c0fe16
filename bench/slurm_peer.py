"""Measure the one-node Slurm that bench/peers/slurm/setup.sh started, as Captain's reference.

Each function returns plain numbers or a dict of them and prints nothing. Every loop is
bounded by a count and a deadline, and every function cancels the Slurm jobs it submitted,
even when it fails. Jobs carry a name unique to one call (``cbench-<what>-<pid>-<n>``), so
cleanup never touches anything else. Job scripts and outputs go to a scratch folder under
``$SLURM_PEER_DIR/scratch`` that is removed afterwards.

Run ``python3 bench/slurm_peer.py --quick`` for a short pass with small sizes.
Standard library only, so that /usr/bin/python3 runs it without a virtual environment.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

PEER_DIR = Path(os.environ.get("SLURM_PEER_DIR", "/tmp/captain-bench-slurm"))
CONF_PATH = PEER_DIR / "etc" / "slurm.conf"
CTLD_PID_PATH = PEER_DIR / "run" / "slurmctld.pid"

COMMAND_TIMEOUT_S = 30.0
POLL_S = 0.1
START_POLL_S = 0.005
# Slurm's default batch_sched_delay: pausing a random part of it before each latency sample
# keeps the samples from locking onto the phase of the controller's scheduling timer.
LATENCY_JITTER_S = 3.0

_call_numbers = itertools.count(1)


class SlurmPeerError(RuntimeError):
    """The Slurm peer is not running or did not do what a measurement needs."""


def _env() -> dict[str, str]:
    return {**os.environ, "SLURM_CONF": str(CONF_PATH)}


def _run(args: Sequence[str], timeout_s: float = COMMAND_TIMEOUT_S) -> str:
    """Runs a Slurm command and returns its stdout; raises SlurmPeerError when it fails."""
    try:
        done = subprocess.run(
            list(args), env=_env(), capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired as exc:
        raise SlurmPeerError(f"{args[0]} took more than {timeout_s} s") from exc
    if done.returncode != 0:
        raise SlurmPeerError(f"{' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _job_name(what: str) -> str:
    return f"cbench-{what}-{os.getpid()}-{next(_call_numbers)}"


def _sbatch(name: str, args: Sequence[str]) -> int:
    out = _run(["sbatch", "--parsable", "-J", name, "-o", "/dev/null", *args])
    return int(out.strip().split(";")[0])


def _queued_ids(name: str) -> set[int]:
    out = _run(["squeue", "-h", "-n", name, "-o", "%i"])
    return {int(line) for line in out.split()}


def _wait_queue_empty(name: str, deadline_at: float) -> bool:
    """Polls squeue until no job called ``name`` is left or the monotonic deadline passes."""
    while _queued_ids(name):
        if time.monotonic() >= deadline_at:
            return False
        time.sleep(POLL_S)
    return True


def _cancel(name: str, wait_s: float = 30.0) -> None:
    _run(["scancel", "-n", name])
    if not _wait_queue_empty(name, time.monotonic() + wait_s):
        raise SlurmPeerError(f"jobs named {name} still queued {wait_s} s after scancel")


@contextmanager
def _jobs(what: str) -> Iterator[str]:
    """Yields a fresh job name and cancels every job of that name on the way out."""
    name = _job_name(what)
    try:
        yield name
    finally:
        _cancel(name)


@contextmanager
def _scratch() -> Iterator[Path]:
    (PEER_DIR / "scratch").mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="run-", dir=PEER_DIR / "scratch"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks, q in [0, 1]."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _ctld_pid() -> int:
    try:
        pid = int(CTLD_PID_PATH.read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError) as exc:
        raise SlurmPeerError(f"no slurmctld behind {CTLD_PID_PATH}; run setup.sh") from exc
    if comm != "slurmctld":
        raise SlurmPeerError(f"pid {pid} in {CTLD_PID_PATH} is {comm}, not slurmctld")
    return pid


def _ctld_up() -> bool:
    try:
        return "is UP" in _run(["scontrol", "ping"], timeout_s=10.0)
    except SlurmPeerError:
        return False


def _node_idle() -> bool:
    try:
        states = _run(["sinfo", "-h", "-N", "-o", "%T"], timeout_s=10.0).split()
    except SlurmPeerError:
        return False
    return bool(states) and all(state == "idle" for state in states)


def _wait_until(check: Callable[[], bool], what: str, wait_s: float) -> None:
    deadline_at = time.monotonic() + wait_s
    while not check():
        if time.monotonic() >= deadline_at:
            raise SlurmPeerError(f"{what} not reached within {wait_s} s")
        time.sleep(POLL_S)


def require_peer() -> None:
    """Raises SlurmPeerError unless slurmctld answers; call before a series of measurements."""
    if not CONF_PATH.exists():
        raise SlurmPeerError(f"{CONF_PATH} missing; run bench/peers/slurm/setup.sh")
    if not _ctld_up():
        raise SlurmPeerError("slurmctld does not answer; run bench/peers/slurm/setup.sh")


def submit_rate(n: int, submitters: int, deadline_s: float = 120.0) -> float:
    """Jobs per second that sbatch accepts, with ``submitters`` parallel submit loops.

    The jobs are submitted held (``--hold``): the controller validates, stores and queues
    each one exactly as for a runnable job, but none starts, so job launches do not compete
    with the submissions for the two cores. All of them are cancelled afterwards.
    """
    base, extra = divmod(n, submitters)
    per_submitter = [base + (1 if i < extra else 0) for i in range(submitters)]
    accepted = [0] * submitters
    errors: list[SlurmPeerError] = []
    with _jobs("rate") as name:
        deadline_at = time.monotonic() + deadline_s

        def submit_loop(index: int) -> None:
            for _ in range(per_submitter[index]):
                if time.monotonic() >= deadline_at or errors:
                    return
                try:
                    _sbatch(name, ["--hold", "--wrap", "true"])
                except SlurmPeerError as exc:
                    errors.append(exc)
                    return
                accepted[index] += 1

        threads = [threading.Thread(target=submit_loop, args=(i,)) for i in range(submitters)]
        started_at = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed_s = time.monotonic() - started_at
    if errors:
        raise errors[0]
    return sum(accepted) / elapsed_s


def submit_round_trip_ms(reps: int) -> float:
    """Median wall time in ms from starting one sbatch process to its exit.

    Held jobs again, one at a time, so nothing runs between the samples.
    """
    samples_ms = []
    with _jobs("rtt") as name:
        for _ in range(reps):
            started_at = time.perf_counter()
            _sbatch(name, ["--hold", "--wrap", "true"])
            samples_ms.append((time.perf_counter() - started_at) * 1000.0)
    return statistics.median(samples_ms)


def submit_to_start_s(reps: int, wait_s: float = 60.0) -> dict[str, float]:
    """p50 and p95 of seconds from just before sbatch to the job's own first instruction.

    The job writes ``date +%s.%N`` (wall clock, ns) to a file; the submit instant is
    ``time.time()`` just before sbatch is called. Samples run one at a time on an idle node,
    each after a random pause of up to LATENCY_JITTER_S. A job that does not start within
    ``wait_s`` is cancelled and counted in ``missed``.
    """
    samples_s: list[float] = []
    missed = 0
    with _scratch() as scratch, _jobs("start") as name:
        script = scratch / "stamp.sh"
        script.write_text('#!/bin/sh\ndate +%s.%N > "$1.tmp" && mv "$1.tmp" "$1"\n')
        script.chmod(0o755)
        for i in range(reps):
            time.sleep(random.uniform(0.0, LATENCY_JITTER_S))
            stamp = scratch / f"start.{i}"
            submitted_at = time.time()
            _sbatch(name, [str(script), str(stamp)])
            deadline_at = time.monotonic() + wait_s
            while not stamp.exists() and time.monotonic() < deadline_at:
                time.sleep(START_POLL_S)
            if stamp.exists():
                samples_s.append(float(stamp.read_text()) - submitted_at)
            else:
                missed += 1
                _run(["scancel", "-n", name])
            if not _wait_queue_empty(name, time.monotonic() + wait_s):
                raise SlurmPeerError(f"latency job {name} did not leave the queue")
    if not samples_s:
        raise SlurmPeerError(f"none of {reps} latency jobs started within {wait_s} s")
    return {
        "p50": _percentile(samples_s, 0.50),
        "p95": _percentile(samples_s, 0.95),
        "samples": float(len(samples_s)),
        "missed": float(missed),
    }


def throughput(n: int, deadline_s: float = 300.0) -> float:
    """Trivial jobs completed per second, end to end, from the first sbatch to an empty queue.

    One submitter sends ``n`` jobs running ``true``; squeue is polled until none of them is
    left. Should the deadline pass first, the jobs still queued are not counted and are
    cancelled, and the rate covers the jobs that did leave the queue within the deadline.
    """
    with _jobs("tput") as name:
        started_at = time.monotonic()
        deadline_at = started_at + deadline_s
        submitted = 0
        for _ in range(n):
            if time.monotonic() >= deadline_at:
                break
            _sbatch(name, ["--wrap", "true"])
            submitted += 1
        _wait_queue_empty(name, deadline_at)
        elapsed_s = time.monotonic() - started_at
        left = len(_queued_ids(name))
    return (submitted - left) / elapsed_s


def _restart_ctld(wait_s: float) -> None:
    """Kills slurmctld with SIGKILL and starts it again on the same conf and state folder."""
    pid = _ctld_pid()
    os.kill(pid, signal.SIGKILL)
    _wait_until(lambda: not Path(f"/proc/{pid}").exists(), "old slurmctld gone", wait_s)
    subprocess.run(
        ["slurmctld", "-f", str(CONF_PATH)],
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=COMMAND_TIMEOUT_S,
        check=True,
    )
    _wait_until(_ctld_up, "slurmctld answering after restart", wait_s)


def restart_loss(n: int, delay_s: float = 0.0, wait_s: float = 60.0) -> int:
    """Accepted jobs that slurmctld no longer knows after a SIGKILL right after accepting them.

    ``n`` held jobs are submitted, slurmctld is killed with SIGKILL ``delay_s`` after the
    last sbatch returns (at once by default) and started again with the same conf; every
    accepted job id that squeue does not list afterwards counts as lost. Slurm saves its job
    state from a background thread, batching changes for a few seconds, so an immediate kill
    mostly measures what that window loses. Before returning, the node is idle again and
    the surviving jobs are cancelled.
    """
    with _jobs("restart") as name:
        accepted = [_sbatch(name, ["--hold", "--wrap", "true"]) for _ in range(n)]
        time.sleep(delay_s)
        _restart_ctld(wait_s)
        known = _queued_ids(name)
        _wait_until(_node_idle, "node idle after slurmctld restart", wait_s)
    return sum(1 for job_id in accepted if job_id not in known)


def controller_memory_mb(peak: bool = False) -> float:
    """Resident memory of slurmctld in MiB: VmRSS now, or VmHWM (its peak) when ``peak``.

    A restart_loss call replaces slurmctld, which resets the peak.
    """
    pid = _ctld_pid()
    field = "VmHWM:" if peak else "VmRSS:"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024.0
    raise SlurmPeerError(f"no {field} line for slurmctld {pid}")


def _measure_all(quick: bool) -> Iterator[tuple[str, float, str]]:
    """Yields (name, value, unit) for each measurement, as soon as it is taken."""
    size = 1 if quick else 10
    yield "controller_memory_mb[idle]", controller_memory_mb(), "MiB"
    for submitters in (1, 4):
        yield f"submit_rate[{submitters}]", submit_rate(50 * size, submitters), "jobs/s"
    yield "submit_round_trip_ms", submit_round_trip_ms(10 * size), "ms"
    latency = submit_to_start_s(5 * size)
    yield "submit_to_start_s.p50", latency["p50"], "s"
    yield "submit_to_start_s.p95", latency["p95"], "s"
    yield "throughput", throughput(10 * size), "jobs/s"
    yield "controller_memory_mb[after load]", controller_memory_mb(), "MiB"
    yield "controller_memory_mb[peak]", controller_memory_mb(peak=True), "MiB"
    yield f"restart_loss[{10 * size} jobs, kill at once]", restart_loss(10 * size), "jobs"
    lost_later = restart_loss(10 * size, delay_s=6.0)
    yield f"restart_loss[{10 * size} jobs, kill after 6 s]", lost_later, "jobs"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a minute or two")
    args = parser.parse_args(argv)
    try:
        require_peer()
        for name, value, unit in _measure_all(args.quick):
            shown = str(value) if isinstance(value, int) else f"{value:.3f}"
            print(f"{name}: {shown} {unit}", flush=True)
    except SlurmPeerError as exc:
        print(f"slurm_peer: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
