"""Slurm beside Captain: the same workloads on the one-node Slurm of bench/peers/slurm.

Each profile (stock, tuned) is started with setup.sh, which installs Slurm if needed, then
measured with bench/slurm_peer.py: held sbatch jobs for the submit rates, a job that stamps
its start for the latency, squeue for the end. Each Captain figure with a Slurm counterpart
gets the ratio Captain/Slurm; the Slurm figures themselves are added to the list.
"""

import subprocess
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import slurm_peer
from bench.figures import Figure

SETUP = Path(__file__).resolve().parent / "peers" / "slurm" / "setup.sh"

# rates (1 and 8 submitters), round trips, latency samples, throughput jobs
PEER_SIZES = {
    "smoke": ((20, 40), 3, 2, 4),
    "quick": ((100, 200), 10, 6, 10),
    "long": ((500, 1000), 30, 20, 50),
}

# Captain figure (by name prefix) -> its Slurm counterpart
COUNTERPARTS = {
    "submit_rate.http[1]": "submit_rate[1]",
    "submit_rate.http[8]": "submit_rate[8]",
    "submit_rate.cli[1]": "submit_rate[1]",
    "submit_rate.cli[8]": "submit_rate[8]",
    "round_trip_ms.cli_chore": "round_trip_ms",
    "submit_to_start_ms.api.p50": "submit_to_start_ms.p50",
    "submit_to_start_ms.api.p95": "submit_to_start_ms.p95",
    "submit_to_start_ms.cli.p50": "submit_to_start_ms.p50",
    "throughput[": "throughput",
}
UNITS = {"submit_rate[1]": "jobs/s", "submit_rate[8]": "jobs/s", "round_trip_ms": "ms",
         "submit_to_start_ms.p50": "ms", "submit_to_start_ms.p95": "ms",
         "throughput": "jobs/s", "controller_memory": "MiB"}

PeerReport = Callable[[str, str, float | None, str], None]


def start(profile: str) -> None:
    done = subprocess.run(["bash", str(SETUP), "--profile", profile], capture_output=True,
                          text=True, timeout=1200, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"setup.sh --profile {profile} failed: {done.stderr[-1500:]}")


def measure(profile: str, mode: str, report: PeerReport) -> dict[str, float]:
    rates, round_trips, samples, jobs = PEER_SIZES[mode]
    start(profile)
    slurm_peer.require_peer()
    values: dict[str, float] = {}

    def keep(name: str, value: float) -> None:
        values[name] = value
        report(profile, name, value, UNITS[name])

    for submitters, n in zip((1, 8), rates, strict=True):
        keep(f"submit_rate[{submitters}]", slurm_peer.submit_rate(n, submitters))
    keep("round_trip_ms", slurm_peer.submit_round_trip_ms(round_trips))
    latency = slurm_peer.submit_to_start_s(samples)
    keep("submit_to_start_ms.p50", latency["p50"] * 1000)
    keep("submit_to_start_ms.p95", latency["p95"] * 1000)
    keep("throughput", slurm_peer.throughput(jobs))
    keep("controller_memory", slurm_peer.controller_memory_mb())
    return values


def compare(found: list[Figure], profiles: list[str], mode: str, report: PeerReport) -> None:
    """Measures each profile, sets each Captain figure's ratio, appends the Slurm figures."""
    for profile in profiles:
        try:
            values = measure(profile, mode, report)
        except Exception as exc:
            traceback.print_exc()
            report(profile, f"failed: {exc}", None, "")
            continue
        for figure in found:
            key = next((v for k, v in COUNTERPARTS.items() if figure.name.startswith(k)), None)
            if key and figure.value and values.get(key):
                figure.peer[profile] = figure.value / values[key]
        found.extend(Figure(name=f"slurm[{profile}].{name}", value=value, unit=UNITS[name])
                     for name, value in values.items())
    print(f"bench: Slurm is left running; stop it with bash {SETUP.parent / 'stop.sh'}")
