"""The chore keeper: a small process that runs one chore as its user and records its end.

The sailor starts `python -I -m sailor.keeper CHORES_FOLDER` in a session of its own, so the
keeper (and the chore) outlive a restart of the sailor. The sailor starts each keeper ahead of
time, on standby: it forks the chore's process and moves it into control groups of its own at
once, then waits for a chore id on its standard input, so that an order waits neither for an
interpreter to start nor for the kernel's slow first move into a new group. It ends at once
if the sailor goes away before naming a chore.

The keeper puts the chore in its own control groups (or process group), switches to the user,
runs the script by path, waits for it, enforces the time limit, and writes the exit status to
a file the sailor reads, even when the sailor was away; when the script could not be started,
the file also says why. SIGTERM asks the keeper to cancel the chore: it sends SIGTERM to every
process of it, waits a grace period, then SIGKILL. Standard library only: it starts fast.
"""

import errno
import json
import os
import select
import signal
import sys
import time
from pathlib import Path
from typing import NamedTuple, NoReturn

from sailor import cgroups

_cancel_asked = False

MAX_START_ERROR_BYTES = 1000


def _ask_cancel(signum: int, frame: object) -> None:
    global _cancel_asked
    _cancel_asked = True


def write_json_atomically(path: Path, data: dict) -> None:
    temp = path.with_name(path.name + ".tmp")
    with open(temp, "w") as file:
        json.dump(data, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, path)


class WaitingChild(NamedTuple):
    """The chore's process, forked ahead of time, waiting for its orders on a pipe."""

    pid: int
    orders: int  # write end: one JSON document, then closed
    errors: int  # read end of the pipe on which the child says why it could not start
    groups: dict[str, Path]  # the groups it was moved into, under provisional names


def fork_waiting_child(groups: dict[str, Path]) -> WaitingChild:
    """Forks the chore's process and moves it into `groups` at once: the kernel's first move
    of a process into a control group costs over ten milliseconds on the test machines (a
    grace period of its locks), which a keeper on standby pays before the chore is known.
    The child then waits for its orders; an empty pipe tells it to leave."""
    error_read, error_write = os.pipe()  # all four ends close on exec
    orders_read, orders_write = os.pipe()
    child = os.fork()
    if child != 0:
        os.close(error_write)
        os.close(orders_read)
        return WaitingChild(child, orders_write, error_read, groups)
    os.close(error_read)
    os.close(orders_write)
    joined = set()
    for kind, folder in groups.items():
        try:
            cgroups.join({kind: folder}, os.getpid())
            joined.add(kind)
        except OSError:
            pass
    chunks = []
    while chunk := os.read(orders_read, 65536):
        chunks.append(chunk)
    if not chunks:
        os._exit(0)
    orders = json.loads(b"".join(chunks))
    settled = joined & set(orders["renamed"])
    to_join = {k: Path(v) for k, v in orders["groups"].items() if k not in settled}
    run_chore_process(orders["spec"], to_join, orders["memory"], error_write)


def give_orders(child: WaitingChild, spec: dict, groups: dict[str, Path], memory: str,
                renamed: set[str]) -> None:
    orders = json.dumps({"spec": spec, "groups": {k: str(v) for k, v in groups.items()},
                         "memory": memory, "renamed": sorted(renamed)}).encode()
    try:
        while orders:
            orders = orders[os.write(child.orders, orders):]
    except OSError:
        pass  # the child is gone: its exit status says so
    os.close(child.orders)


def run_chore_process(spec: dict, groups: dict[str, Path], memory: str,
                      error_pipe: int) -> NoReturn:
    """In the forked child: confine, switch user, open outputs, exec. Never returns.

    A step that fails writes why to `error_pipe` and exits 126 (127 for a missing script).
    The pipe closes on exec, so the keeper reads nothing from it when the script started.
    """
    script = spec["script"]
    doing = "join the chore's control groups"
    try:
        cgroups.join(groups, os.getpid())
        os.setpgid(0, 0)
        doing = f"run on cores {spec['cores']}"
        os.sched_setaffinity(0, spec["cores"])
        if spec.get("ram") and memory == "none":
            import resource

            doing = "limit the chore's memory"
            resource.setrlimit(resource.RLIMIT_AS, (spec["ram"], spec["ram"]))
        if os.getuid() != spec["uid"]:
            doing = f"switch to uid {spec['uid']}"
            os.setgroups(spec["groups"])
            os.setgid(spec["gid"])
            os.setuid(spec["uid"])
        doing = f"enter {os.path.dirname(script)}"
        os.chdir(os.path.dirname(script))
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        doing = f"write {spec['stdout']}"
        out = os.open(spec["stdout"], flags, 0o644)
        doing = f"write {spec['stderr']}"
        err = os.open(spec["stderr"], flags, 0o644)
        doing = "open /dev/null"
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
    except Exception as exc:
        _fail_start(error_pipe, f"cannot {doing}: {_why(exc)}", 126)
    try:
        os.execve(script, [script], spec["env"])
    except OSError as exc:
        if exc.errno == errno.ENOEXEC:
            try:
                os.execve("/bin/sh", ["/bin/sh", script], spec["env"])
            except OSError as exc2:
                exc = exc2
        _fail_start(error_pipe, f"cannot run {script}: {_why(exc)}",
                    127 if exc.errno == errno.ENOENT else 126)


def _why(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _fail_start(error_pipe: int, why: str, exit_code: int) -> NoReturn:
    """Says why the chore could not start, to the keeper and on stderr, and exits."""
    data = why.encode(errors="replace")[:MAX_START_ERROR_BYTES]
    for fd, text in ((error_pipe, data), (2, b"captain: could not start the chore: %s\n" % data)):
        try:
            os.write(fd, text)
        except OSError:
            pass
    os._exit(exit_code)


def read_start_error(error_pipe: int) -> str | None:
    """What the chore's process wrote before exec, once it has ended; None if nothing."""
    os.set_blocking(error_pipe, False)
    chunks = []
    try:
        while chunk := os.read(error_pipe, 4096):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    os.close(error_pipe)
    return b"".join(chunks).decode(errors="replace") or None


def signal_all(groups: dict[str, Path], child: int, signum: int) -> None:
    targets = cgroups.members(groups)
    for pid in targets:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    try:
        os.killpg(child, signum)
    except ProcessLookupError:
        pass


def stop_chore(groups: dict[str, Path], child: int, grace_s: float) -> None:
    """SIGTERM to every process of the chore, then SIGKILL to what is left."""
    signal_all(groups, child, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not cgroups.members(groups) and not _group_alive(child):
            return
        time.sleep(0.05)
    signal_all(groups, child, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs. The chore's own process, once dead, stays
    a zombie in its group until the keeper reaps it: zombies do not count, else every stop
    would wait its whole grace period."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as file:
                stat = file.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def wait_for(child: int, deadline: float | None, grace_s: float,
             groups: dict[str, Path]) -> tuple[int, str | None]:
    """Waits for the chore; returns its wait status and why the keeper stopped it, if it did."""
    pidfd = os.pidfd_open(child)
    stopped_for: str | None = None
    while True:
        timeout = 0.1
        if deadline is not None and stopped_for is None:
            timeout = max(0.0, min(timeout, deadline - time.monotonic()))
        select.select([pidfd], [], [], timeout)
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            os.close(pidfd)
            return status, stopped_for
        if stopped_for is None and _cancel_asked:
            stopped_for = "canceled"
            stop_chore(groups, child, grace_s)
        elif stopped_for is None and deadline is not None and time.monotonic() >= deadline:
            stopped_for = "time limit"
            stop_chore(groups, child, grace_s)


def process_start_ticks(pid: int | str) -> int | None:
    """When the process started, in clock ticks since boot: with its pid, a name no later
    process can take."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            stat = file.read()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2:].split()[19])


def ignore_hangups() -> None:
    """What a chore inherits, as `nohup` gives it: no end when a terminal or Ctrl-C goes."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def standby(chores_folder: str) -> int:
    """Waits for the sailor to name a chore (its spec is in CHORES_FOLDER/ID/spec.json), with
    the chore's process forked and in its control groups meanwhile."""
    ignore_hangups()
    try:
        groups = cgroups.chore_groups(f"standby-{os.getpid()}")
        cgroups.create(groups, None)
    except OSError:
        groups = {}
    waiting = fork_waiting_child(groups)
    chore_id = sys.stdin.readline().strip()
    if not chore_id or "/" in chore_id or chore_id.startswith("."):
        os.close(waiting.orders)
        os.waitpid(waiting.pid, 0)
        cgroups.remove(groups)
        return 0
    folder = Path(chores_folder) / chore_id
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    log_file = os.open(folder / "keeper.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_file, 2)
    for fd in (null, log_file):
        os.close(fd)
    return main(folder / "spec.json", waiting)


def main(spec_path: Path, waiting: WaitingChild | None = None) -> int:
    spec = json.loads(spec_path.read_text())
    folder = spec_path.parent
    signal.signal(signal.SIGTERM, _ask_cancel)
    ignore_hangups()
    groups = {k: Path(v) for k, v in spec["cgroups"].items()}
    provisional = waiting.groups if waiting is not None else {}
    renamed = cgroups.take_over(provisional, groups)
    # A group that kept its provisional name is left once the chore has moved to its own.
    left_behind = {k: v for k, v in provisional.items() if k not in renamed}
    cgroups.remove(left_behind)
    try:
        memory = cgroups.create(groups, spec.get("ram"))
    except OSError as exc:
        print(f"keeper: no control groups ({exc}); using the process group", file=sys.stderr)
        groups, memory = {}, "none"
    if spec.get("ram") and memory == "none":
        memory = "rlimit"
    started_mono = time.monotonic()
    if waiting is None:
        waiting = fork_waiting_child({})
    give_orders(waiting, spec, groups, memory, renamed)
    child, error_read = waiting.pid, waiting.errors
    write_json_atomically(folder / "started.json",
                          {"pid": child, "keeper_pid": os.getpid(), "memory_limit": memory,
                           "keeper_start_ticks": process_start_ticks("self")})
    print(json.dumps({"pid": child, "memory_limit": memory}), flush=True)
    os.close(1)
    max_time_s = spec.get("max_time_s")
    deadline = started_mono + max_time_s if max_time_s else None
    status, stopped_for = wait_for(child, deadline, spec.get("grace_s", 5.0), groups)
    if cgroups.members(groups) or _group_alive(child):
        stop_chore(groups, child, 0.5)
    start_error = read_start_error(error_read)
    end = {
        "exit_code": os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "stopped_for": stopped_for,
        "out_of_memory": cgroups.out_of_memory(groups),
        "run_s": round(time.monotonic() - started_mono, 3),
        "start_error": start_error,
    }
    write_json_atomically(folder / "ended.json", end)
    # A keeper killed before this point leaves its groups behind, empty, for an admin's rmdir.
    cgroups.remove(groups)
    cgroups.remove(left_behind)
    return 0


if __name__ == "__main__":
    target = Path(sys.argv[1])
    sys.exit(standby(sys.argv[1]) if target.is_dir() else main(target))
