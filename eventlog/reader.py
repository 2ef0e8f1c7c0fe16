"""Reading the log without touching it: for history, replays to an instant, and checks.

The store's own replay (at start) repairs a torn last line; these readers never write. They
may run while the captain appends: a last line without its newline is a write in progress
and is left for the next read, never reported as damage.
"""

from collections.abc import Iterator
from pathlib import Path

import msgspec

from eventlog.codec import BadLine, decode_line, seq_of, verify_line
from eventlog.events import AnyEvent
from eventlog.store import SEGMENT_PATTERN, LogDamaged


def segments(folder: Path) -> list[tuple[int, Path]]:
    """The segment files of a log folder with their first seq, oldest first."""
    found = []
    for path in folder.glob("events-*.jsonl"):
        match = SEGMENT_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def lines_of(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for each complete line of a segment; an unfinished one is left."""
    with open(path, "rb") as file:
        data = file.read()
    offset = 0
    number = 0
    while True:
        end = data.find(b"\n", offset)
        if end < 0:
            return
        number += 1
        yield number, data[offset:end + 1]
        offset = end + 1


def read_events(folder: Path, after_seq: int = 0, up_to_seq: int | None = None,
                contains: bytes | None = None) -> Iterator[AnyEvent]:
    """The events with after_seq < seq <= up_to_seq, in order, from a log folder.

    With `contains`, only lines holding those bytes are decoded (a cheap filter for one
    chore's history). A damaged complete line raises LogDamaged naming the file and line.
    """
    found = segments(folder)
    for index, (_, path) in enumerate(found):
        if index + 1 < len(found) and found[index + 1][0] <= after_seq + 1:
            continue
        if up_to_seq is not None and found[index][0] > up_to_seq:
            return
        for number, line in lines_of(path):
            if contains is not None and contains not in line:
                continue
            try:
                seq = seq_of(verify_line(line))
                if seq <= after_seq:
                    continue
                if up_to_seq is not None and seq > up_to_seq:
                    return
                yield decode_line(line)
            except BadLine as exc:
                raise LogDamaged(f"{path}: line {number} is damaged ({exc})") from None


def chore_needle(chore_id: str) -> bytes:
    """Bytes every line about this chore holds (its id as a JSON string)."""
    return msgspec.json.encode(chore_id)
