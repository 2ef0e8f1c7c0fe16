"""Captain's benchmark suite: one line per figure (`name: value unit`), then a table.

    python -m bench                 quick sizes (a few minutes at most on two cores)
    python -m bench --long          the full sizes (1,000 chores of throughput, 1M events...)
    python -m bench --smoke         the smallest sizes, to check that every figure still runs
    python -m bench --peer slurm    the same workloads on a one-node Slurm, stock and tuned,
                                    each figure also shown as a ratio Captain/Slurm
    python -m bench --json FILE     also write the figures as JSON

It starts its own captain and sailors on loopback addresses in a scratch folder, runs chores
as root (so it needs root), and removes everything it made when it ends. `--python PY` runs
the suite with the interpreter of the project's environment (`bash bench/run` finds it).
"""

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import msgspec

from bench import figures as fig
from bench.figures import Figure

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("submit", "latency", "throughput", "crew", "schedule", "memory", "restart")


class Sizes(msgspec.Struct, frozen=True):
    http_rate: tuple[int, int]  # chores sent from 1 and from 8 submitters
    cli_rate: tuple[int, int]
    round_trips: int
    latency: tuple[int, int]  # samples through the API, through the CLI
    throughput: int
    crew: tuple[int, float, float]  # simulated sailors, seconds between calls, window
    schedule: tuple[int, int]  # sailors, pending chores
    memory: tuple[int, int]  # sailors, chores
    restart: tuple[int, ...]  # events of history


SIZES = {
    "smoke": Sizes(http_rate=(20, 40), cli_rate=(3, 8), round_trips=2, latency=(2, 1),
                   throughput=8, crew=(20, 1.0, 2.0), schedule=(10, 100),
                   memory=(100, 1000), restart=(1000,)),
    "quick": Sizes(http_rate=(300, 1200), cli_rate=(16, 48), round_trips=11, latency=(15, 5),
                   throughput=200, crew=(1000, 2.0, 10.0), schedule=(1000, 10_000),
                   memory=(10_000, 100_000), restart=(10_000, 100_000)),
    "long": Sizes(http_rate=(1000, 4000), cli_rate=(50, 200), round_trips=31,
                  latency=(50, 15), throughput=1000, crew=(1000, 2.0, 60.0),
                  schedule=(1000, 10_000), memory=(10_000, 100_000),
                  restart=(10_000, 100_000, 1_000_000)),
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--long", action="store_true", help="the full sizes")
    mode.add_argument("--smoke", action="store_true", help="the smallest sizes")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures here")
    parser.add_argument("--peer", choices=["slurm"], help="measure Slurm beside Captain")
    parser.add_argument("--profiles", default="stock,tuned",
                        help="with --peer slurm: the Slurm profiles (default stock,tuned)")
    parser.add_argument("--only", metavar="S1,S2", help=f"sections: {','.join(SECTIONS)}")
    parser.add_argument("--python", metavar="PY", help="the project environment's python")
    return parser.parse_args(argv)


def run_with(python: str, argv: list[str]) -> None:
    """Starts the suite again under the project environment's interpreter."""
    rest = [a for i, a in enumerate(argv) if a != "--python" and argv[i - 1:i] != ["--python"]]
    rest = [a for a in rest if not a.startswith("--python=")]
    os.chdir(ROOT)
    os.execv(python, [python, "-m", "bench", *rest])


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.python and Path(args.python).absolute() != Path(sys.executable).absolute():
        run_with(args.python, argv)
    if os.geteuid() != 0:
        print("bench: run it as root: its sailors run chores, which needs root",
              file=sys.stderr)
        return 2
    mode = "long" if args.long else "smoke" if args.smoke else "quick"
    sections = args.only.split(",") if args.only else list(SECTIONS)
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        print(f"bench: unknown sections {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    from bench import suite

    started = time.monotonic()
    print(f"bench: {mode} sizes, sections {','.join(sections)}", flush=True)
    found = suite.measure(SIZES[mode], sections, report)
    profiles: list[str] = []
    if args.peer == "slurm":
        from bench import peer

        profiles = args.profiles.split(",")
        peer.compare(found, profiles, mode, report_peer)
    print(f"\n{fig.table(found, profiles)}")
    print(f"\nbench: done in {time.monotonic() - started:.0f} s")
    if args.json:
        fig.write_json(args.json, found, about(mode, sections, profiles))
        print(f"bench: figures written to {args.json}")
    return 0


def report(figure: Figure) -> None:
    print(fig.line(figure), flush=True)


def report_peer(profile: str, name: str, value: float | None, unit: str) -> None:
    print(f"slurm[{profile}].{name}: {fig.shown(value)} {unit}", flush=True)


def about(mode: str, sections: list[str], profiles: list[str]) -> dict[str, object]:
    return {
        "mode": mode, "sections": sections, "peer_profiles": profiles,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(), "cpu_model": cpu_model(), "python": platform.python_version(),
        "kernel": platform.release(),
    }


def cpu_model() -> str:
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                return text.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
