"""`captain --check-log`: every line and checksum of every segment, and the snapshots.

Reads only; works with or without a running captain. A problem is named by file and line:
a damaged line, a seq out of order, a segment whose name does not match its first event, a
gap in the history no snapshot covers, a snapshot that does not read back.
"""

from pathlib import Path
from typing import Any

import msgspec

from eventlog.codec import BadLine, decode_line
from eventlog.reader import lines_of, segments


class Report(msgspec.Struct, kw_only=True):
    folder: str
    segments: int = 0
    events: int = 0
    first_seq: int = 0
    last_seq: int = 0
    snapshots: list[int] = []
    set_aside: list[str] = []
    problems: list[str] = []

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**msgspec.to_builtins(self), "ok": self.ok}

    def lines(self) -> list[str]:
        """The report for people, one finding a line, the verdict last."""
        found = [f"log {self.folder}: {self.segments} segments, {self.events} events"
                 + (f" (seq {self.first_seq} to {self.last_seq})" if self.events else "")]
        if self.snapshots:
            found.append("snapshots at seq " + ", ".join(map(str, self.snapshots)))
        found += [f"set aside earlier (not part of the log): {name}" for name in self.set_aside]
        found += [f"problem: {problem}" for problem in self.problems]
        found.append("ok" if self.ok else f"{len(self.problems)} problems")
        return found


def check_folder(log_folder: Path, snapshot_folder: Path | None = None) -> Report:
    report = Report(folder=str(log_folder))
    if not log_folder.is_dir():
        report.problems.append(f"{log_folder}: no such folder")
        return report
    found = segments(log_folder)
    report.segments = len(found)
    for index, (first_seq, path) in enumerate(found):
        _check_segment(report, path, first_seq, is_last=index == len(found) - 1)
    report.set_aside = sorted(p.name for p in log_folder.glob("events-*.jsonl.torn-at-*"))
    if snapshot_folder is not None and snapshot_folder.is_dir():
        _check_snapshots(report, snapshot_folder)
    _check_history_starts(report, found)
    return report


def _check_segment(report: Report, path: Path, first_seq: int, is_last: bool) -> None:
    size = path.stat().st_size
    read = 0
    expected = first_seq
    for number, line in lines_of(path):
        read += len(line)
        try:
            event = decode_line(line)
        except BadLine as exc:
            report.problems.append(f"{path}:{number}: damaged line ({exc})")
            expected += 1
            continue
        if report.events == 0:
            report.first_seq = event.seq
        if event.seq != expected:
            report.problems.append(f"{path}:{number}: seq {event.seq} where {expected} was "
                                   "expected")
        report.events += 1
        report.last_seq = event.seq
        expected = event.seq + 1
    if read < size:
        where = "the newest segment" if is_last else "a segment that is not the newest"
        report.problems.append(
            f"{path}:{number_after(path)}: the last line is unfinished, in {where} (a write "
            "cut short; the captain sets it aside at its next start)")


def number_after(path: Path) -> int:
    return path.read_bytes().count(b"\n") + 1


def _check_snapshots(report: Report, folder: Path) -> None:
    from projections.snapshots import BadSnapshot, decode, listed

    for seq, path in sorted(listed(folder)):
        try:
            state, _ = decode(path.read_bytes())
        except (OSError, BadSnapshot) as exc:
            report.problems.append(f"{path}: snapshot does not read back ({exc}); the "
                                   "captain skips it")
            continue
        report.snapshots.append(state.last_seq)
        if report.events and seq > report.last_seq:
            report.problems.append(f"{path}: snapshot at seq {seq} is ahead of the log "
                                   f"(last seq {report.last_seq})")


def _check_history_starts(report: Report, found: list[tuple[int, Path]]) -> None:
    """Segments may be archived away only when a snapshot covers every event in them."""
    if not found or found[0][0] <= 1:
        return
    first = found[0][0]
    if not any(seq >= first - 1 for seq in report.snapshots):
        report.problems.append(
            f"{found[0][1]}: the log starts at seq {first} and no snapshot covers the "
            f"events before it")
