"""Kernel control groups for chores: one group per chore to find (and kill) every process
of it, and to cap its memory. Standard library only: the chore keeper imports it.

cgroup v2 is used when the sailor's own group lists `memory` in `cgroup.controllers` and is
writable (systemd's `Delegate=yes` gives a service that); else the v1 hierarchies when they
are mounted and writable. Groups are made under the sailor's own group as /proc/self/cgroup
names it. v2 hands controllers down only from a group that holds no process itself, so the
sailor first moves its own processes into a leaf group (`settle_daemon`), and chores go in
`captain/<chore>` beside that leaf.

`CAPTAIN_CGROUP_ROOT` and the `proc_cgroup` parameters let tests use a fake tree.
"""

import os
from pathlib import Path

CGROUP_ROOT = Path(os.environ.get("CAPTAIN_CGROUP_ROOT", "/sys/fs/cgroup"))
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
DAEMON_LEAF = "sailor-daemon"


def _own_paths(proc_cgroup: Path = PROC_SELF_CGROUP) -> dict[str, str]:
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


def _v2_base(root: Path, own: dict[str, str]) -> Path | None:
    """The sailor's own v2 group when it can hand the memory controller down, else None."""
    if "" not in own:
        return None
    unified = root / "unified" if (root / "unified").is_dir() else root
    path = own[""].rstrip("/")
    if path.endswith("/" + DAEMON_LEAF):
        path = path[: -len(DAEMON_LEAF) - 1]
    base = unified / path.lstrip("/")
    try:
        listed = (base / "cgroup.controllers").read_text().split()
    except OSError:
        return None
    return base if "memory" in listed and _writable(base) else None


def settle_daemon(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP
                  ) -> Path | None:
    """With usable cgroup v2, moves the processes of the sailor's group into a leaf of its
    own, so that the group may hand controllers to chore groups. Returns the leaf, if any."""
    base = _v2_base(root, _own_paths(proc_cgroup))
    if base is None:
        return None
    leaf = base / DAEMON_LEAF
    leaf.mkdir(exist_ok=True)
    try:
        pids = (base / "cgroup.procs").read_text().split()
    except OSError:
        pids = []
    for pid in pids:
        try:
            (leaf / "cgroup.procs").write_text(pid)
        except OSError:
            pass  # a process that ended meanwhile
    return leaf


def chore_groups(name: str, root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP
                 ) -> dict[str, Path]:
    """Where this chore's groups would go: {"v2": dir} or {"pids": dir, "memory": dir}."""
    own = _own_paths(proc_cgroup)
    base = _v2_base(root, own)
    if base is not None:
        return {"v2": base / "captain" / name}
    groups = {}
    for controller in ("pids", "memory"):
        hierarchy = root / controller / own.get(controller, "/").lstrip("/")
        if _writable(hierarchy):
            groups[controller] = hierarchy / "captain" / name
    return groups


def create(groups: dict[str, Path], ram_bytes: int | None) -> str:
    """Makes the groups; returns the memory mechanism in force ("cgroup" or "none")."""
    mechanism = "none"
    for kind, folder in groups.items():
        folder.mkdir(parents=True, exist_ok=True)
        if kind == "v2":
            _hand_down_controllers(folder)
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


def take_over(provisional: dict[str, Path], wanted: dict[str, Path]) -> set[str]:
    """Gives groups made ahead of time the chore's names; returns the kinds renamed. One that
    cannot be renamed is left for `remove` (the chore's own is then made anew)."""
    renamed = set()
    for kind, folder in provisional.items():
        target = wanted.get(kind)
        if target is None:
            continue
        try:
            folder.rename(target)
        except OSError:
            continue
        renamed.add(kind)
    return renamed


def _hand_down_controllers(chore_group: Path) -> None:
    """Enables memory (and pids) for the groups under the sailor's group and `captain/`."""
    parent = chore_group.parent
    base = parent.parent
    listed = (base / "cgroup.controllers").read_text().split()
    wanted = " ".join(f"+{c}" for c in ("memory", "pids") if c in listed)
    for folder in (base, parent):
        (folder / "cgroup.subtree_control").write_text(wanted)


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
