"""Kernel control groups for chores: one group per chore to find (and kill) every process
of it, and to cap its memory. Standard library only: the chore keeper imports it.

cgroup v2 is used when the sailor's own group lists `memory` (or `pids`) in
`cgroup.controllers`; else the v1 hierarchies when they are mounted and writable. Groups are
made under the sailor's own group as /proc/self/cgroup names it.
"""

import os
from pathlib import Path

CGROUP_ROOT = Path(os.environ.get("CAPTAIN_CGROUP_ROOT", "/sys/fs/cgroup"))


def _own_paths(proc_cgroup: Path = Path("/proc/self/cgroup")) -> dict[str, str]:
    """Controller name ("" for the v2 hierarchy) -> this process's group path."""
    found: dict[str, str] = {}
    try:
        text = proc_cgroup.read_text()
    except OSError:
        return found
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(","):
            found[controller] = parts[2]
    return found


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK)


def chore_groups(name: str, root: Path = CGROUP_ROOT) -> dict[str, Path]:
    """Where this chore's groups would go: {"v2": dir} or {"pids": dir, "memory": dir}."""
    own = _own_paths()
    unified = root / "unified" if (root / "unified").is_dir() else root
    if "" in own:
        base = unified / own[""].lstrip("/")
        controllers = base / "cgroup.controllers"
        try:
            listed = controllers.read_text().split()
        except OSError:
            listed = []
        if "memory" in listed and _writable(base):
            return {"v2": base / "captain" / name}
    groups = {}
    for controller in ("pids", "memory"):
        base = root / controller / own.get(controller, "/").lstrip("/")
        if _writable(base):
            groups[controller] = base / "captain" / name
    return groups


def create(groups: dict[str, Path], ram_bytes: int | None) -> str:
    """Makes the groups; returns the memory mechanism in force ("cgroup" or "none")."""
    mechanism = "none"
    for kind, folder in groups.items():
        folder.mkdir(parents=True, exist_ok=True)
        if ram_bytes is None:
            continue
        if kind == "memory":
            (folder / "memory.limit_in_bytes").write_text(str(ram_bytes))
            mechanism = "cgroup"
        elif kind == "v2":
            (folder / "memory.max").write_text(str(ram_bytes))
            if (folder / "memory.swap.max").exists():
                (folder / "memory.swap.max").write_text("0")
            mechanism = "cgroup"
    return mechanism


def join(groups: dict[str, Path], pid: int) -> None:
    for folder in groups.values():
        (folder / "cgroup.procs").write_text(str(pid))


def members(groups: dict[str, Path]) -> set[int]:
    found: set[int] = set()
    for folder in groups.values():
        try:
            found |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
        except OSError:
            continue
    return found


def out_of_memory(groups: dict[str, Path]) -> bool:
    """Whether the kernel killed a process of the group for lack of memory."""
    for kind, folder in groups.items():
        name = "memory.oom_control" if kind == "memory" else "memory.events"
        if kind not in ("memory", "v2"):
            continue
        try:
            for line in (folder / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value or 0) > 0:
                    return True
        except (OSError, ValueError):
            continue
    return False


def remove(groups: dict[str, Path]) -> None:
    for folder in groups.values():
        try:
            folder.rmdir()
        except OSError:
            pass
