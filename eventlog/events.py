"""Every change the captain knows of, as typed events in one tagged union.

Events are named in the past tense. Each carries the schema version it was written with, its
position in the log (`seq`) and the wall-clock instant it was recorded (`at`). A field added
later must have a default, so that older logs still decode.
"""

from typing import Literal

import msgspec

SCHEMA_VERSION = 1

ChoreStatus = Literal["pending", "assigned", "running", "done", "failed", "canceled"]
ACTIVE_STATUSES: frozenset[str] = frozenset({"pending", "assigned", "running"})
ENDED_STATUSES: frozenset[str] = frozenset({"done", "failed", "canceled"})


class Gpu(msgspec.Struct, frozen=True):
    type: str
    vram: int


class Event(msgspec.Struct, kw_only=True, tag=True, tag_field="type"):
    v: int = SCHEMA_VERSION
    seq: int = 0
    at: float = 0.0


# --- the crew -------------------------------------------------------------------------------


class SailorPreregistered(Event):
    name: str
    ip: str
    services: list[str] = []
    max_time_s: int | None = None


class SailorUpdated(Event):
    name: str
    ip: str
    services: list[str]
    max_time_s: int | None = None


class SailorRemoved(Event):
    name: str
    by: int


class SailorRegistered(Event):
    """A sailor woke up (first time, or back after being down) and said what it has."""

    name: str
    port: int
    cpus: int
    cores: list[int]
    gpus: list[Gpu]
    ram: int
    running: list[str] = []


class SailorWentDown(Event):
    name: str
    silent_s: float


# --- chores ---------------------------------------------------------------------------------


class ChoreRequested(Event):
    chore_id: str
    owner: int
    owner_name: str
    script: str
    service: str | None = None
    sailor: str | None = None
    cpus: int = 1
    gpus: int = 0
    gpu_type: str | None = None
    vram: int | None = None
    ram: int | None = None
    reason: str = "no available sailor"


class ChoreWaiting(Event):
    """A pending chore's reason to wait changed."""

    chore_id: str
    reason: str


class ChoreAssigned(Event):
    chore_id: str
    sailor: str
    cores: list[int]
    gpu_ids: list[int]


class ChoreRefused(Event):
    """The sailor said no, or did not answer in time: the chore is pending again."""

    chore_id: str
    sailor: str
    reason: str


class ChoreStarted(Event):
    chore_id: str
    sailor: str
    pid: int
    memory_limit: str = "none"


class ChoreCancelRequested(Event):
    chore_id: str
    reason: str
    by: int


class ChoreEnded(Event):
    chore_id: str
    status: Literal["done", "failed", "canceled"]
    reason: str = ""
    exit_code: int | None = None
    signal: int | None = None


class ChoresArchived(Event):
    """Ended chores leave the views; their events stay in the log."""

    chore_ids: list[str]


# --- users ----------------------------------------------------------------------------------


class UserUpserted(Event):
    uid: int
    name: str
    time_limit_s: int | None = None
    chores_limit: int | None = None
    notes: str = ""


AnyEvent = (
    SailorPreregistered
    | SailorUpdated
    | SailorRemoved
    | SailorRegistered
    | SailorWentDown
    | ChoreRequested
    | ChoreWaiting
    | ChoreAssigned
    | ChoreRefused
    | ChoreStarted
    | ChoreCancelRequested
    | ChoreEnded
    | ChoresArchived
    | UserUpserted
)
