"""The captain's projected state: a pure fold of the event log.

`apply(state, event)` is the only way state changes. Replaying the same events always gives
the same state; an event at or below the state's position is ignored, so delivering one twice
changes nothing.
"""

import logging
from collections.abc import Callable
from typing import Any

import msgspec

from eventlog import events as ev

log = logging.getLogger(__name__)


class SailorState(msgspec.Struct, kw_only=True):
    name: str
    ip: str
    services: list[str] = []
    max_time_s: int | None = None
    registered: bool = False
    up: bool = False
    port: int = 0
    cpus: int = 0
    cores: list[int] = []
    gpus: list[ev.Gpu] = []
    ram: int = 0
    woke_at: float | None = None
    cores_in_use: list[int] = []
    gpus_in_use: list[int] = []
    ram_in_use: int = 0
    chores: list[str] = []


class ChoreState(msgspec.Struct, kw_only=True):
    chore_id: str
    owner: int
    owner_name: str
    script: str
    service: str | None
    sailor_asked: str | None
    cpus: int
    gpus: int
    gpu_type: str | None = None
    vram: int | None = None
    ram: int | None = None
    status: str = "pending"
    reason: str = ""
    sailor: str | None = None
    cores: list[int] = []
    gpu_ids: list[int] = []
    pid: int | None = None
    memory_limit: str = "none"
    requested_at: float = 0.0
    assigned_at: float | None = None
    assignment: int = 0
    start: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    cancel_reason: str | None = None
    refused_by: list[str] = []


class UserState(msgspec.Struct, kw_only=True):
    uid: int
    name: str
    time_limit_s: int | None = None
    chores_limit: int | None = None
    notes: str = ""


class State(msgspec.Struct, kw_only=True):
    last_seq: int = 0
    last_chore_number: int = 0
    sailors: dict[str, SailorState] = {}
    chores: dict[str, ChoreState] = {}
    pending: dict[str, None] = {}
    users: dict[str, UserState] = {}

    def sailor_at(self, ip: str) -> SailorState | None:
        for sailor in self.sailors.values():
            if sailor.ip == ip:
                return sailor
        return None

    def active_chores_of(self, owner: int) -> list[ChoreState]:
        return [c for c in self.chores.values()
                if c.owner == owner and c.status in ev.ACTIVE_STATUSES]


def apply(state: State, event: ev.AnyEvent) -> None:
    """Folds one event into the state, in place."""
    if event.seq and event.seq <= state.last_seq:
        return
    handler = _HANDLERS.get(type(event))
    if handler is None:
        log.error("projection: no handler for event %s", type(event).__name__)
    else:
        handler(state, event)
    if event.seq:
        state.last_seq = event.seq


# --- the crew -------------------------------------------------------------------------------


def _sailor_preregistered(state: State, event: ev.SailorPreregistered) -> None:
    state.sailors[event.name] = SailorState(
        name=event.name, ip=event.ip, services=list(event.services), max_time_s=event.max_time_s
    )


def _sailor_updated(state: State, event: ev.SailorUpdated) -> None:
    sailor = state.sailors.get(event.name)
    if sailor is None:
        return
    if sailor.ip != event.ip:
        sailor.up = False
    sailor.ip = event.ip
    sailor.services = list(event.services)
    sailor.max_time_s = event.max_time_s


def _sailor_removed(state: State, event: ev.SailorRemoved) -> None:
    state.sailors.pop(event.name, None)


def _sailor_registered(state: State, event: ev.SailorRegistered) -> None:
    sailor = state.sailors.get(event.name)
    if sailor is None:
        return
    sailor.registered = True
    sailor.up = True
    sailor.port = event.port
    sailor.cpus = event.cpus
    sailor.cores = list(event.cores)
    sailor.gpus = list(event.gpus)
    sailor.ram = event.ram
    sailor.woke_at = event.at


def _sailor_went_down(state: State, event: ev.SailorWentDown) -> None:
    sailor = state.sailors.get(event.name)
    if sailor is not None:
        sailor.up = False


# --- chores ---------------------------------------------------------------------------------


def _chore_requested(state: State, event: ev.ChoreRequested) -> None:
    state.chores[event.chore_id] = ChoreState(
        chore_id=event.chore_id, owner=event.owner, owner_name=event.owner_name,
        script=event.script, service=event.service, sailor_asked=event.sailor,
        cpus=event.cpus, gpus=event.gpus, gpu_type=event.gpu_type, vram=event.vram,
        ram=event.ram, reason=event.reason, requested_at=event.at,
    )
    state.pending[event.chore_id] = None
    number = int(event.chore_id) if event.chore_id.isdecimal() else 0
    state.last_chore_number = max(state.last_chore_number, number)


def _chore_waiting(state: State, event: ev.ChoreWaiting) -> None:
    chore = state.chores.get(event.chore_id)
    if chore is not None and chore.status == "pending":
        chore.reason = event.reason


def _chore_assigned(state: State, event: ev.ChoreAssigned) -> None:
    chore = state.chores.get(event.chore_id)
    sailor = state.sailors.get(event.sailor)
    if chore is None or chore.status != "pending" or sailor is None:
        log.error("projection: chore=%s cannot be assigned to sailor=%s",
                  event.chore_id, event.sailor)
        return
    chore.status = "assigned"
    chore.reason = f"sent to sailor {event.sailor}"
    chore.sailor = event.sailor
    chore.cores = list(event.cores)
    chore.gpu_ids = list(event.gpu_ids)
    chore.assigned_at = event.at
    chore.assignment = event.seq
    state.pending.pop(event.chore_id, None)
    _hold(sailor, chore)


def _chore_refused(state: State, event: ev.ChoreRefused) -> None:
    chore = state.chores.get(event.chore_id)
    if chore is None or chore.status != "assigned" or chore.sailor != event.sailor:
        return
    _release(state, chore)
    chore.status = "pending"
    chore.reason = event.reason
    chore.sailor = None
    chore.cores = []
    chore.gpu_ids = []
    chore.refused_by = [*chore.refused_by, event.sailor]
    state.pending[event.chore_id] = None


def _chore_started(state: State, event: ev.ChoreStarted) -> None:
    chore = state.chores.get(event.chore_id)
    if chore is None or chore.status != "assigned" or chore.sailor != event.sailor:
        return
    chore.status = "running"
    chore.reason = chore.cancel_reason or "running"
    chore.pid = event.pid
    chore.memory_limit = event.memory_limit
    chore.start = event.at


def _chore_cancel_requested(state: State, event: ev.ChoreCancelRequested) -> None:
    chore = state.chores.get(event.chore_id)
    if chore is None or chore.status in ev.ENDED_STATUSES:
        return
    chore.cancel_reason = event.reason
    chore.reason = event.reason


def _chore_ended(state: State, event: ev.ChoreEnded) -> None:
    chore = state.chores.get(event.chore_id)
    if chore is None or chore.status in ev.ENDED_STATUSES:
        return
    _release(state, chore)
    state.pending.pop(event.chore_id, None)
    chore.status = event.status
    chore.reason = event.reason
    chore.exit_code = event.exit_code
    chore.signal = event.signal
    chore.ended_at = event.at


def _chores_archived(state: State, event: ev.ChoresArchived) -> None:
    for chore_id in event.chore_ids:
        chore = state.chores.get(chore_id)
        if chore is not None and chore.status in ev.ENDED_STATUSES:
            del state.chores[chore_id]


def _hold(sailor: SailorState, chore: ChoreState) -> None:
    sailor.cores_in_use = sorted({*sailor.cores_in_use, *chore.cores})
    sailor.gpus_in_use = sorted({*sailor.gpus_in_use, *chore.gpu_ids})
    sailor.ram_in_use += chore.ram or 0
    sailor.chores = [*sailor.chores, chore.chore_id]


def _release(state: State, chore: ChoreState) -> None:
    if chore.sailor is None or chore.status not in ("assigned", "running"):
        return
    sailor = state.sailors.get(chore.sailor)
    if sailor is None:
        return
    cores, gpus = set(chore.cores), set(chore.gpu_ids)
    sailor.cores_in_use = [c for c in sailor.cores_in_use if c not in cores]
    sailor.gpus_in_use = [g for g in sailor.gpus_in_use if g not in gpus]
    sailor.ram_in_use = max(0, sailor.ram_in_use - (chore.ram or 0))
    sailor.chores = [c for c in sailor.chores if c != chore.chore_id]


# --- users ----------------------------------------------------------------------------------


def _user_upserted(state: State, event: ev.UserUpserted) -> None:
    state.users[str(event.uid)] = UserState(
        uid=event.uid, name=event.name, time_limit_s=event.time_limit_s,
        chores_limit=event.chores_limit, notes=event.notes,
    )


_HANDLERS: dict[type, Callable[[State, Any], None]] = {
    ev.SailorPreregistered: _sailor_preregistered,
    ev.SailorUpdated: _sailor_updated,
    ev.SailorRemoved: _sailor_removed,
    ev.SailorRegistered: _sailor_registered,
    ev.SailorWentDown: _sailor_went_down,
    ev.ChoreRequested: _chore_requested,
    ev.ChoreWaiting: _chore_waiting,
    ev.ChoreAssigned: _chore_assigned,
    ev.ChoreRefused: _chore_refused,
    ev.ChoreStarted: _chore_started,
    ev.ChoreCancelRequested: _chore_cancel_requested,
    ev.ChoreEnded: _chore_ended,
    ev.ChoresArchived: _chores_archived,
    ev.UserUpserted: _user_upserted,
}
