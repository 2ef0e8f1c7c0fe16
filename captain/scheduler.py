"""Where a chore goes: a pure decision on the projected state, with no side effects.

`place(state, chore)` returns the sailor with the exact core ids and GPU indices to grant, or
the reason the chore has to wait. Among the sailors that fit, the one left with the fewest
free cores wins (best fit), which keeps whole sailors free for large chores.
"""

import msgspec

from projections.state import ChoreState, SailorState, State

NO_AVAILABLE_SAILOR = "no available sailor"


class Placement(msgspec.Struct, frozen=True):
    sailor: str
    cores: list[int]
    gpu_ids: list[int]


class Wait(msgspec.Struct, frozen=True):
    reason: str


def candidates(state: State, chore: ChoreState) -> list[SailorState]:
    """The sailors the chore may run on, whatever their load."""
    if chore.sailor_asked is not None:
        sailor = state.sailors.get(chore.sailor_asked)
        return [sailor] if sailor is not None else []
    return [s for s in state.sailors.values() if chore.service in s.services]


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


def place(state: State, chore: ChoreState, passed_over: frozenset[str] = frozenset()
          ) -> Placement | Wait:
    sailors = [s for s in candidates(state, chore) if s.name not in passed_over]
    if chore.sailor_asked is not None and sailors and not sailors[0].up:
        return Wait("sailor down")
    best: Placement | None = None
    best_free = 0
    for sailor in sailors:
        # Counting first keeps a pass over a large crew cheap: fit() builds lists, and a
        # sailor short of cores, or no better than the best fit so far, needs none of them.
        free_after = len(sailor.cores) - len(sailor.cores_in_use) - chore.cpus
        if free_after < 0 or (best is not None and free_after >= best_free):
            continue
        placement = fit(sailor, chore)
        if placement is None:
            continue
        if best is None or free_after < best_free:
            best, best_free = placement, free_after
    if best is not None:
        return best
    return Wait(NO_AVAILABLE_SAILOR)
