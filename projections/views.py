"""The JSON views people and tools read: crew, chores and users, in the documented shapes.

Keys follow the documented registry files: a chore's resources sit under `ressources`, the
spelling the file format has always used.
"""

import os
from typing import Any

from common.units import format_duration
from projections.state import ChoreState, SailorState, State, UserState


def sailor_status(sailor: SailorState) -> str:
    if not (sailor.registered and sailor.up):
        return "down"
    if not sailor.chores:
        return "idle"
    if len(sailor.cores_in_use) >= len(sailor.cores):
        return "full"
    return "busy"


def sailor_view(sailor: SailorState, last_seen: float | None) -> dict[str, Any]:
    return {
        "name": sailor.name,
        "ip": sailor.ip,
        "port": sailor.port,
        "services": sailor.services,
        "status": sailor_status(sailor),
        "cpus": sailor.cpus,
        "cores": sailor.cores,
        "gpus": [{"type": g.type, "vram": g.vram} for g in sailor.gpus],
        "ram": sailor.ram,
        "cpus_in_use": len(sailor.cores_in_use),
        "cores_in_use": sailor.cores_in_use,
        "gpus_in_use": sailor.gpus_in_use,
        "ram_in_use": sailor.ram_in_use,
        "max_time_s": sailor.max_time_s,
        "max_time": format_duration(sailor.max_time_s) if sailor.max_time_s else None,
        "chores": len(sailor.chores),
        "last_seen": int(last_seen) if last_seen is not None else None,
        "registered": sailor.registered,
    }


def crew_view(state: State, last_seen: dict[str, float]) -> dict[str, dict[str, Any]]:
    return {name: sailor_view(s, last_seen.get(name)) for name, s in state.sailors.items()}


def output_paths(chore: ChoreState) -> tuple[str, str]:
    folder = os.path.dirname(chore.script)
    return (os.path.join(folder, f"chore-{chore.chore_id}.out"),
            os.path.join(folder, f"chore-{chore.chore_id}.err"))


def chore_view(chore: ChoreState) -> dict[str, Any]:
    stdout, stderr = output_paths(chore)
    return {
        "chore_id": chore.chore_id,
        "script": chore.script,
        "service": chore.service,
        "ressources": {
            "cpus": chore.cpus, "gpus": chore.gpus, "gpu_type": chore.gpu_type,
            "vram": chore.vram, "ram": chore.ram,
        },
        "sailor": chore.sailor,
        "sailor_asked": chore.sailor_asked,
        "owner": chore.owner,
        "owner_name": chore.owner_name,
        "status": chore.status,
        "reason": chore.reason,
        "requested_at": chore.requested_at,
        "start": chore.start,
        "ended_at": chore.ended_at,
        "exit_code": chore.exit_code,
        "signal": chore.signal,
        "cores": chore.cores,
        "gpu_ids": chore.gpu_ids,
        "memory_limit": chore.memory_limit,
        "stdout": stdout,
        "stderr": stderr,
    }


def chores_view(state: State, owner: int | None = None) -> dict[str, dict[str, Any]]:
    """Every chore in the view, or one owner's when `owner` is given."""
    return {cid: chore_view(c) for cid, c in state.chores.items()
            if owner is None or c.owner == owner}


def user_view(user: UserState) -> dict[str, Any]:
    return {
        "name": user.name,
        "uid": str(user.uid),
        "time_limit": format_duration(user.time_limit_s) if user.time_limit_s else None,
        "chores_limit": user.chores_limit,
        "notes": user.notes,
    }


def users_view(state: State) -> dict[str, dict[str, Any]]:
    return {uid: user_view(u) for uid, u in state.users.items()}
