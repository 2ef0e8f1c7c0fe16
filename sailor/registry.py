"""The sailor's own durable registry of the chores it runs.

Saved as `chores.json` in the sailor's data folder, `{chore_id: {chore_id, pid, ...}}`,
replaced atomically at every change. An entry stays until the captain has acknowledged the
chore's end, so a restarted sailor still reports every end it has not delivered.
"""

import os
from pathlib import Path

import msgspec

from common.messages import ChoreReport


class Entry(msgspec.Struct, kw_only=True):
    chore_id: str
    pid: int
    keeper_pid: int
    owner: int
    script: str
    cores: list[int]
    gpu_ids: list[int]
    memory_limit: str = "none"
    started_at: float = 0.0
    assignment: int = 0
    cancel_reason: str | None = None
    start_acked: bool = False
    end: ChoreReport | None = None


class Registry:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "chores.json"
        self.entries: dict[str, Entry] = {}

    def load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        self.entries = msgspec.json.decode(data, type=dict[str, Entry])

    def save(self) -> None:
        temp = self.path.with_name(".chores.json.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, msgspec.json.encode(self.entries))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.path)

    def running_ids(self) -> list[str]:
        return [cid for cid, entry in self.entries.items() if entry.end is None]
