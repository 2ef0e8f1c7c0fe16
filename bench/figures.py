"""Figures as the suite prints them: `name: value unit` lines, a table, and a JSON file."""

import json
import math
from collections.abc import Sequence
from pathlib import Path

import msgspec


class Figure(msgspec.Struct, kw_only=True):
    name: str
    value: float | None
    unit: str
    note: str = ""
    peer: dict[str, float | None] = {}


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks, q in [0, 1]."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def shown(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def line(figure: Figure) -> str:
    text = f"{figure.name}: {shown(figure.value)} {figure.unit}"
    for profile, ratio in figure.peer.items():
        text += f"  (Captain/Slurm {profile}: {shown(ratio)})"
    return text + (f"  # {figure.note}" if figure.note else "")


def table(figures: Sequence[Figure], profiles: Sequence[str]) -> str:
    header = ["figure", "captain", "unit", *(f"/slurm {p}" for p in profiles)]
    rows = [header]
    for figure in figures:
        ratios = [shown(figure.peer.get(p)) for p in profiles]
        rows.append([figure.name, shown(figure.value), figure.unit, *ratios])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w)
                 in enumerate(zip(row, widths, strict=True))]
        out.append("  ".join(cells).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def write_json(path: Path, figures: Sequence[Figure], about: dict[str, object]) -> None:
    data = {"about": about, "figures": [msgspec.to_builtins(f) for f in figures]}
    path.write_text(json.dumps(data, indent=2) + "\n")
