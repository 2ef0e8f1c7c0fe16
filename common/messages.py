"""Request and response bodies of every endpoint, shared by the servers and the CLI.

Each endpoint decodes its body into one of these Structs; an unknown field, a wrong type or
a missing field is refused with a 4xx naming the field.
"""

from typing import Annotated, Literal

import msgspec

Count = Annotated[int, msgspec.Meta(ge=0, le=4096)]
Positive = Annotated[int, msgspec.Meta(ge=1, le=4096)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
ChoreId = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[0-9]+$")]
Path = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class GpuSpec(msgspec.Struct, frozen=True):
    type: Annotated[str, msgspec.Meta(max_length=128)]
    vram: Annotated[int, msgspec.Meta(ge=0)]


# --- user -> captain ------------------------------------------------------------------------


class ChoreRequest(Body, kw_only=True):
    script: Path
    service: Name | None = None
    sailor: Name | None = None
    cpus: Positive = 1
    gpus: Count = 0
    gpu_type: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    vram: Annotated[int, msgspec.Meta(ge=1)] | None = None
    ram: Annotated[int, msgspec.Meta(ge=1)] | None = None


class ConsultRequest(Body, kw_only=True):
    all: bool = False


class CancelRequest(Body, kw_only=True):
    chore_id: ChoreId


class PreregRequest(Body, kw_only=True):
    name: Name
    ip: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    services: list[Name] = []
    max_time: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class CrewListRequest(Body, kw_only=True):
    """A whole crew list, preregistered at once or not at all."""

    sailors: Annotated[list[PreregRequest], msgspec.Meta(min_length=1, max_length=10_000)]


class SailorSetRequest(Body, kw_only=True):
    """A change to a sailor of the crew list; a field left out keeps its value."""

    name: Name
    ip: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    services: list[Name] | None = None
    max_time: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class SailorRemoveRequest(Body, kw_only=True):
    name: Name
    force: bool = False


class UserUpsertRequest(Body, kw_only=True):
    """A user's limits: a field left out keeps its value, null (or "none") removes a limit."""

    uid: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
    name: Name | msgspec.UnsetType = msgspec.UNSET
    time_limit: Annotated[str, msgspec.Meta(max_length=64)] | None | msgspec.UnsetType = (
        msgspec.UNSET)
    chores_limit: Annotated[int, msgspec.Meta(ge=0, le=10**6)] | None | msgspec.UnsetType = (
        msgspec.UNSET)
    notes: Annotated[str, msgspec.Meta(max_length=1000)] | msgspec.UnsetType = msgspec.UNSET


# --- sailor -> captain ----------------------------------------------------------------------


class SailorRegisterRequest(Body, kw_only=True):
    port: Port
    cpus: Positive
    cores: list[Annotated[int, msgspec.Meta(ge=0)]]
    gpus: list[GpuSpec] = []
    ram: Annotated[int, msgspec.Meta(ge=0)]
    running: list[ChoreId] = []


class SailorAwakeRequest(Body, kw_only=True):
    port: Port
    running: list[ChoreId] = []


class ChoreReport(Body, kw_only=True):
    chore_id: ChoreId
    status: Literal["running", "done", "failed", "canceled"]
    pid: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""
    memory_limit: str = "none"


class SailorReportRequest(Body, kw_only=True):
    reports: list[ChoreReport]


class SailorReportAnswer(msgspec.Struct):
    acked: list[ChoreId]
    kill: list[ChoreId] = []


class SailorAnswer(msgspec.Struct):
    ok: bool
    reason: str = ""
    registered: bool = True
    kill: list[ChoreId] = []


# --- captain -> sailor ----------------------------------------------------------------------


class ChoreOrder(Body, kw_only=True):
    chore_id: ChoreId
    script: Path
    owner: Annotated[int, msgspec.Meta(ge=0)]
    cores: list[Annotated[int, msgspec.Meta(ge=0)]]
    gpu_ids: list[Annotated[int, msgspec.Meta(ge=0)]] = []
    ram: Annotated[int, msgspec.Meta(ge=1)] | None = None
    max_time_s: Annotated[int, msgspec.Meta(ge=1)] | None = None
    # Which placement of the chore this order carries out: a cancel naming it withdraws
    # this order only, not a later placement of the same chore on the same sailor.
    assignment: Annotated[int, msgspec.Meta(ge=0)] = 0


class OrderAnswer(msgspec.Struct):
    accepted: bool
    reason: str = ""
    pid: int | None = None
    memory_limit: str = "none"


class CancelOrder(Body, kw_only=True):
    chore_id: ChoreId
    reason: str = "canceled"
    assignment: Annotated[int, msgspec.Meta(ge=0)] | None = None


class CancelAnswer(msgspec.Struct):
    known: bool
