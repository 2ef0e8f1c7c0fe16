"""Snapshots of the projected state, so that a start reads a snapshot and the log's tail.

A snapshot is `snapshots/state-<seq>.json`: `{"seq": N, "at": T, "crc": "...", "state": {...}}`
where `state` is the fold of every event up to seq N (whose instant was T), and `crc` the
CRC-32 of the state's bytes. It is written to a temp file, synced, renamed into place and the
folder synced: a snapshot either exists whole or not at all. One that does not read back
(damaged, or written by a version whose state no longer decodes) is skipped with a warning.
"""

import logging
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import msgspec

from eventlog import faults
from eventlog.store import fsync_folder
from projections.state import State

log = logging.getLogger(__name__)

KEEP_SNAPSHOTS = 3
_PREFIX = "state-"


class Snapshot(msgspec.Struct):
    seq: int
    at: float
    crc: str
    state: msgspec.Raw


class BadSnapshot(ValueError):
    pass


def snapshot_name(seq: int) -> str:
    return f"{_PREFIX}{seq:012d}.json"


def listed(folder: Path) -> list[tuple[int, Path]]:
    """The snapshot files of a folder with their seq, newest first."""
    found = []
    for path in folder.glob(f"{_PREFIX}*.json"):
        number = path.name[len(_PREFIX):-len(".json")]
        if number.isdecimal():
            found.append((int(number), path))
    return sorted(found, reverse=True)


def encode(state: State, at: float) -> bytes:
    body = msgspec.json.encode(state)
    crc = f"{zlib.crc32(body):08x}"
    return b'{"seq":%d,"at":%s,"crc":"%s","state":%s}' % (
        state.last_seq, msgspec.json.encode(at), crc.encode(), body)


def decode(data: bytes) -> tuple[State, float]:
    """The state and instant of a snapshot's bytes, or BadSnapshot saying why."""
    try:
        snapshot = msgspec.json.decode(data, type=Snapshot)
    except msgspec.DecodeError as exc:
        raise BadSnapshot(f"not a snapshot: {exc}") from None
    if f"{zlib.crc32(snapshot.state):08x}" != snapshot.crc:
        raise BadSnapshot("checksum does not match")
    try:
        state = msgspec.json.decode(snapshot.state, type=State)
    except msgspec.DecodeError as exc:
        raise BadSnapshot(f"state does not decode: {exc}") from None
    if state.last_seq != snapshot.seq:
        raise BadSnapshot(f"state is at seq {state.last_seq}, not {snapshot.seq}")
    return state, snapshot.at


def readable(folder: Path, at_most_seq: int | None = None,
             at_most_at: float | None = None) -> Iterator[tuple[State, float, Path]]:
    """Snapshots that read back, newest first, within the given bounds; bad ones warned of."""
    for seq, path in listed(folder):
        if at_most_seq is not None and seq > at_most_seq:
            continue
        try:
            state, at = decode(path.read_bytes())
        except (OSError, BadSnapshot) as exc:
            log.warning("snapshots: skipped %s: %s", path, exc)
            continue
        if at_most_at is not None and at > at_most_at:
            continue
        yield state, at, path


def newest(folder: Path, at_most_seq: int | None = None) -> tuple[State, float] | None:
    for state, at, _ in readable(folder, at_most_seq):
        return state, at
    return None


def write_temp(folder: Path, data: bytes, seq: int) -> Path:
    """Writes and syncs a snapshot's bytes to a temp file; step one of saving it."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = folder / f".{snapshot_name(seq)}.tmp"
    with open(temp, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    return temp


def put_in_place(temp: Path, seq: int) -> Path:
    """Renames a synced temp file into place and syncs the folder; step two."""
    if faults.armed("snapshot-before-rename"):
        faults.crash()
    final = temp.with_name(snapshot_name(seq))
    os.replace(temp, final)
    fsync_folder(temp.parent)
    _prune(temp.parent)
    return final


def _prune(folder: Path) -> None:
    """Keeps the newest few snapshots (an older one is a fallback if the newest is bad)."""
    for _, path in listed(folder)[KEEP_SNAPSHOTS:]:
        path.unlink(missing_ok=True)
    for temp in folder.glob(f".{_PREFIX}*.tmp"):
        temp.unlink(missing_ok=True)
