"""The benchmark suite at its smallest sizes: every figure is still measured (no thresholds)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURE = re.compile(r"^([\w.\[\], ]+): ([-0-9.e+]+|n/a) (\S+)", re.MULTILINE)
EXPECTED = ("submit_rate.http[1]", "submit_rate.http[8]", "submit_rate.cli[1]",
            "round_trip_ms.cli_chore", "round_trip_ms.cli_consult",
            "submit_to_start_ms.api.p50", "end_seen_ms.p50", "throughput[",
            "crew[20].captain_cpu", "schedule_s[", "captain_memory[", "log_restart_")


def test_smoke_run_prints_every_figure(tmp_path: Path):
    out = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=150,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    measured = {name: value for name, value, _ in FIGURE.findall(done.stdout)}
    for expected in EXPECTED:
        names = [n for n in measured if n.startswith(expected)]
        assert names, f"no figure {expected} in:\n{done.stdout}\n{done.stderr[-3000:]}"
        assert all(measured[n] != "n/a" for n in names), f"{expected} not measured:\n" \
            f"{done.stdout}\n{done.stderr[-3000:]}"
    assert out.exists()
