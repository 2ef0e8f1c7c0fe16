"""The sections of the suite, each on a fresh crew, in the order they are printed."""

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bench import in_process, sim_crew, workloads
from bench.figures import Figure
from bench.local import LocalCrew, Scratch, crew_in, write_script

if TYPE_CHECKING:
    from bench.__main__ import Sizes

Report = Callable[[Figure], None]


def measure(sizes: "Sizes", sections: list[str], report: Report) -> list[Figure]:
    sim_crew.raise_open_files_limit()
    found: list[Figure] = []
    steps: dict[str, Callable[[Path], list[Figure]]] = {
        "submit": lambda root: submit(root, sizes, report),
        "latency": lambda root: latency(root, sizes),
        "throughput": lambda root: throughput(root, sizes),
        "crew": lambda root: crew(root, sizes),
        "schedule": lambda root: in_process.scheduling(*sizes.schedule),
        "memory": lambda root: in_process.memory(*sizes.memory),
        "restart": lambda root: restart(root, sizes),
    }
    with Scratch() as root:
        for section in sections:
            try:
                figures = steps[section](root)
            except Exception as exc:
                traceback.print_exc()
                figures = [Figure(name=f"{section}", value=None, unit="",
                                  note=f"failed: {type(exc).__name__}: {exc}")]
            for figure in figures:
                if section != "submit":
                    report(figure)
            found += figures
    return found


def _started(root: Path, name: str, sailors: int = 0) -> LocalCrew:
    crew = crew_in(root, name)
    crew.start_captain()
    return crew


def submit(root: Path, sizes: "Sizes", report: Report) -> list[Figure]:
    """Rates and round trips, against a service whose sailor never comes (nothing runs)."""
    found: list[Figure] = []

    def keep(figures: list[Figure]) -> None:
        for figure in figures:
            report(figure)
        found.extend(figures)

    for index, (submitters, n) in enumerate(zip((1, 8), sizes.http_rate, strict=True)):
        crew = _started(root, f"http{index}")
        try:
            crew.hold_service()
            script = write_script(crew.root, "held.sh", "exit 0\n")
            keep([workloads.http_submit_rate(crew, script, n, submitters)])
        finally:
            crew.stop()
    crew = _started(root, "cli")
    try:
        crew.hold_service()
        script = write_script(crew.root, "held.sh", "exit 0\n")
        keep(workloads.cli_round_trips(crew, script, sizes.round_trips))
        for submitters, n in zip((1, 8), sizes.cli_rate, strict=True):
            keep([workloads.cli_submit_rate(crew, script, n, submitters)])
    finally:
        crew.stop()
    return found


def _two_sailors(root: Path, name: str) -> LocalCrew:
    crew = _started(root, name)
    try:
        crew.add_sailor("s1", "127.0.0.2")
        crew.add_sailor("s2", "127.0.0.3")
    except Exception:
        crew.stop()
        raise
    return crew


def latency(root: Path, sizes: "Sizes") -> list[Figure]:
    crew = _two_sailors(root, "latency")
    try:
        return workloads.latencies(crew, crew.root, *sizes.latency)
    finally:
        crew.stop()


def throughput(root: Path, sizes: "Sizes") -> list[Figure]:
    crew = _two_sailors(root, "throughput")
    try:
        return workloads.throughput(crew, crew.root, sizes.throughput, deadline_s=300)
    finally:
        crew.stop()


def crew(root: Path, sizes: "Sizes") -> list[Figure]:
    count, interval_s, window_s = sizes.crew
    local = _started(root, "simcrew")
    try:
        return sim_crew.simulated_crew(local, count, interval_s, window_s)
    finally:
        local.stop()


def restart(root: Path, sizes: "Sizes") -> list[Figure]:
    """Group commit and restart time, from the event log's own benchmark."""
    from bench import log_bench

    folder = root / "log"
    folder.mkdir()
    writers, duration_s = ((1, 10), 0.3) if sizes.restart[0] < 10_000 else ((1, 10, 100), 1.0)
    found = log_bench.group_commit(folder, writers, duration_s)
    found += log_bench.restart(folder, sizes.restart)
    return [Figure(name=f["name"], value=f["value"], unit=f["unit"], note=f["note"])
            for f in found]
