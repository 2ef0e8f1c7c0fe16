"""Where a chore goes: a pure decision on the projected state, with no side effects.

`place(state, chore)` returns the sailor with the exact core ids and GPU indices to grant, or
the reason the chore has to wait. Among the sailors that fit, the one left with the fewest
free cores wins (best fit; the first in the crew among equals), which keeps whole sailors free
for large chores. A pass placing many chores hands `place` a `CrewIndex` of the crew sorted
that way, which gives the same answer without looking at every sailor.

Fairness: chores are placed oldest first, and a chore that has waited too long gets one
sailor kept for it (`keep_for`): later chores may not take anything on that sailor, so it
drains until the waiting chore fits, however many small chores arrive meanwhile. One chore
at a time holds such a reservation: the oldest one that waited too long and still waits.
Run times are unknown, so nothing small is slipped in first: some of the kept sailor's
cores may sit idle until the large chore fits.
"""

from bisect import bisect_left, insort
from collections.abc import Iterator

import msgspec

from projections.state import ChoreState, SailorState, State

NO_AVAILABLE_SAILOR = "no available sailor"


class Placement(msgspec.Struct, frozen=True):
    sailor: str
    cores: list[int]
    gpu_ids: list[int]


class Wait(msgspec.Struct, frozen=True):
    reason: str


class Reservation(msgspec.Struct, frozen=True):
    """A sailor kept for a chore that has waited too long."""

    chore_id: str
    sailor: str


def candidates(state: State, chore: ChoreState) -> list[SailorState]:
    """The sailors the chore may run on, whatever their load."""
    if chore.sailor_asked is not None:
        sailor = state.sailors.get(chore.sailor_asked)
        return [sailor] if sailor is not None else []
    return [s for s in state.sailors.values() if chore.service in s.services]


def may_run_on(sailor: SailorState, chore: ChoreState) -> bool:
    """Whether the sailor is one of the chore's candidates."""
    if chore.sailor_asked is not None:
        return sailor.name == chore.sailor_asked
    return chore.service in sailor.services


def matching_gpus(sailor: SailorState, chore: ChoreState) -> list[int]:
    """Indices of the sailor's GPUs of the asked model and memory, in use or not."""
    found = []
    for index, gpu in enumerate(sailor.gpus):
        if chore.gpu_type and chore.gpu_type.lower() not in gpu.type.lower():
            continue
        if chore.vram and gpu.vram < chore.vram:
            continue
        found.append(index)
    return found


def could_ever_fit(sailor: SailorState, chore: ChoreState) -> bool:
    """Whether the sailor, empty, has what the chore asks (unknown until it registers)."""
    if not sailor.registered:
        return True
    return (
        sailor.cpus >= chore.cpus
        and len(matching_gpus(sailor, chore)) >= chore.gpus
        and (chore.ram is None or sailor.ram >= chore.ram)
    )


def fit(sailor: SailorState, chore: ChoreState) -> Placement | None:
    """The cores and GPUs this sailor can grant the chore now, if it can."""
    if not (sailor.registered and sailor.up):
        return None
    busy_cores = set(sailor.cores_in_use)
    free_cores = [c for c in sailor.cores if c not in busy_cores]
    if len(free_cores) < chore.cpus:
        return None
    busy_gpus = set(sailor.gpus_in_use)
    free_gpus = [g for g in matching_gpus(sailor, chore) if g not in busy_gpus]
    if len(free_gpus) < chore.gpus:
        return None
    if chore.ram is not None and sailor.ram - sailor.ram_in_use < chore.ram:
        return None
    return Placement(sailor.name, free_cores[: chore.cpus], free_gpus[: chore.gpus])


def free_cores(sailor: SailorState) -> int:
    return len(sailor.cores) - len(sailor.cores_in_use)


class CrewIndex:
    """The up sailors of each service in best-fit order: fewest free cores first, then their
    place in the crew. The first of them with enough free cores that fits a chore is the one
    `place` would choose by looking at every sailor; a pass placing many chores keeps one
    index and tells it of each sailor it gives a chore to."""

    def __init__(self, state: State) -> None:
        self._state = state
        self._rank = {name: rank for rank, name in enumerate(state.sailors)}
        self._keys: dict[str, tuple[int, int, str]] = {}
        self._by_service: dict[str, list[tuple[int, int, str]]] = {}
        for sailor in state.sailors.values():
            self._add(sailor)

    def _add(self, sailor: SailorState) -> None:
        if not (sailor.registered and sailor.up):
            return
        key = (free_cores(sailor), self._rank[sailor.name], sailor.name)
        self._keys[sailor.name] = key
        for service in sailor.services:
            insort(self._by_service.setdefault(service, []), key)

    def changed(self, name: str) -> None:
        """Takes note that this sailor's free cores changed."""
        sailor = self._state.sailors[name]
        key = self._keys.pop(name, None)
        if key is not None:
            for service in sailor.services:
                keys = self._by_service[service]
                del keys[bisect_left(keys, key)]
        self._add(sailor)

    def roomy(self, service: str, cpus: int) -> Iterator[SailorState]:
        """The up sailors of the service with at least `cpus` free cores, best fit first."""
        keys = self._by_service.get(service, [])
        for at in range(bisect_left(keys, (cpus, -1, "")), len(keys)):
            yield self._state.sailors[keys[at][2]]


def place(state: State, chore: ChoreState, passed_over: frozenset[str] = frozenset(),
          reservation: Reservation | None = None, index: CrewIndex | None = None
          ) -> Placement | Wait:
    """Where the chore goes now, or why it waits; `index` (of this state) makes it cheaper."""
    kept = None
    if reservation is not None and reservation.chore_id != chore.chore_id:
        kept = reservation.sailor
    if index is not None and chore.service is not None and chore.sailor_asked is None:
        best = _best_in_index(index, chore, passed_over, kept)
    else:
        sailors = [s for s in candidates(state, chore) if s.name not in passed_over]
        if chore.sailor_asked is not None and sailors and not sailors[0].up:
            return Wait("sailor down")
        best = _best_of(sailors, chore, kept)
    if best is not None:
        return best
    if kept is not None and reservation is not None and kept not in passed_over:
        sailor = state.sailors.get(kept)
        if sailor is not None and may_run_on(sailor, chore) and fit(sailor, chore):
            return Wait(f"sailor {kept} is kept for older chore {reservation.chore_id}")
    return Wait(NO_AVAILABLE_SAILOR)


def _best_of(sailors: list[SailorState], chore: ChoreState, kept: str | None
             ) -> Placement | None:
    """The best fit among these sailors: the fewest free cores left, the first such one."""
    best: Placement | None = None
    best_free = 0
    for sailor in sailors:
        # Counting first keeps a pass over a large crew cheap: fit() builds lists, and a
        # sailor short of cores, or no better than the best fit so far, needs none of them.
        free_after = free_cores(sailor) - chore.cpus
        if free_after < 0 or (best is not None and free_after >= best_free):
            continue
        placement = fit(sailor, chore)
        if placement is None or sailor.name == kept:
            continue
        best, best_free = placement, free_after
    return best


def _best_in_index(index: CrewIndex, chore: ChoreState, passed_over: frozenset[str],
                   kept: str | None) -> Placement | None:
    assert chore.service is not None
    for sailor in index.roomy(chore.service, chore.cpus):
        if sailor.name in passed_over or sailor.name == kept:
            continue
        placement = fit(sailor, chore)
        if placement is not None:
            return placement
    return None


def keep_for(state: State, chore: ChoreState, passed_over: frozenset[str] = frozenset()
             ) -> Reservation | None:
    """The sailor to keep for a chore that waited too long: of the up sailors it could fit
    on once empty, the one with the most free cores (then free GPUs, then by name)."""
    sailors = [s for s in candidates(state, chore) if s.name not in passed_over
               and s.registered and s.up and could_ever_fit(s, chore)]
    if not sailors:
        return None

    def room(sailor: SailorState) -> tuple[int, int, str]:
        free_gpus = len(set(matching_gpus(sailor, chore)) - set(sailor.gpus_in_use))
        return (-free_cores(sailor), -free_gpus, sailor.name)

    return Reservation(chore.chore_id, min(sailors, key=room).name)
