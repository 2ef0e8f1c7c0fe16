"""Events told as lines people read: who asked, why it waited, where it went, how it ended.

Works on events as the endpoints send them (JSON objects with a `type`); fields a watcher
may not see are simply absent, and the line says less.
"""

import datetime
from collections.abc import Callable
from typing import Any

Event = dict[str, Any]


def when(instant: float | None) -> str:
    if not instant:
        return "-"
    moment = datetime.datetime.fromtimestamp(instant)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def line(event: Event) -> str:
    """One line: the instant, the seq, and what happened."""
    tell = _TELLERS.get(event.get("type", ""), _unknown)
    return f"{when(event.get('at'))}  #{event.get('seq', '?'):<7} {tell(event)}"


def _chore(event: Event) -> str:
    return f"chore {event.get('chore_id', '?')}"


def _requested(event: Event) -> str:
    who = event.get("owner_name")
    where = (f"sailor {event['sailor']}" if event.get("sailor")
             else f"service {event['service']}" if event.get("service") else None)
    words = [f"{_chore(event)} requested"]
    if who:
        words.append(f"by {who} ({event.get('owner')})")
    if event.get("script"):
        words.append(f": {event['script']}")
    asked = []
    if where:
        asked.append(f"on {where}")
    if "cpus" in event:
        asked.append(f"{event['cpus']} cpus")
    if event.get("gpus"):
        asked.append(f"{event['gpus']} gpus" + (f" {event['gpu_type']}"
                                                  if event.get("gpu_type") else ""))
    if event.get("ram"):
        asked.append(f"ram {event['ram']} bytes")
    return " ".join(words) + (f" [{', '.join(asked)}]" if asked else "")


def _waiting(event: Event) -> str:
    return f"{_chore(event)} waits: {event.get('reason', '')}"


def _assigned(event: Event) -> str:
    gpus = event.get("gpu_ids") or []
    return (f"{_chore(event)} assigned to sailor {event.get('sailor')} "
            f"(cores {_ids(event.get('cores'))}" + (f", gpus {_ids(gpus)})" if gpus else ")"))


def _refused(event: Event) -> str:
    return f"{_chore(event)} back to pending: {event.get('reason', '')}"


def _started(event: Event) -> str:
    pid = f" pid {event['pid']}" if event.get("pid") else ""
    memory = event.get("memory_limit")
    limit = f", memory limit by {memory}" if memory and memory != "none" else ""
    return f"{_chore(event)} started on sailor {event.get('sailor')}{pid}{limit}"


def _cancel_requested(event: Event) -> str:
    return f"{_chore(event)} cancel asked: {event.get('reason', '')}"


def _ended(event: Event) -> str:
    how = event.get("status", "ended")
    details = []
    if event.get("exit_code") is not None:
        details.append(f"exit code {event['exit_code']}")
    if event.get("signal") is not None:
        details.append(f"signal {event['signal']}")
    reason = event.get("reason")
    if reason and reason not in details:
        details.insert(0, reason)
    return f"{_chore(event)} ended {how}" + (f" ({'; '.join(details)})" if details else "")


def _archived(event: Event) -> str:
    ids = event.get("chore_ids") or []
    return f"chores {', '.join(ids)} left the views (ended and kept long enough)"


def _preregistered(event: Event) -> str:
    services = ",".join(event.get("services") or []) or "none"
    return f"sailor {event.get('name')} added to the crew at {event.get('ip')} " \
           f"(services {services})"


def _updated(event: Event) -> str:
    services = ",".join(event.get("services") or []) or "none"
    return f"sailor {event.get('name')} changed: {event.get('ip')}, services {services}"


def _removed(event: Event) -> str:
    by = f" by uid {event['by']}" if event.get("by") is not None else ""
    return f"sailor {event.get('name')} removed from the crew{by}"


def _registered(event: Event) -> str:
    gpus = len(event.get("gpus") or [])
    running = event.get("running") or []
    still = f", still running chores {', '.join(running)}" if running else ""
    return (f"sailor {event.get('name')} woke up: {event.get('cpus')} cpus, {gpus} gpus, "
            f"ram {event.get('ram')} bytes{still}")


def _went_down(event: Event) -> str:
    return f"sailor {event.get('name')} went down (silent {event.get('silent_s')} s)"


def _user(event: Event) -> str:
    limits = []
    if event.get("chores_limit") is not None:
        limits.append(f"chores limit {event['chores_limit']}")
    if event.get("time_limit_s") is not None:
        limits.append(f"time limit {event['time_limit_s']} s")
    return f"user {event.get('name')} ({event.get('uid')}) set: {', '.join(limits) or 'no limits'}"


def _unknown(event: Event) -> str:
    return f"{event.get('type', 'event')}: " + ", ".join(
        f"{k}={v}" for k, v in event.items() if k not in ("type", "v", "seq", "at"))


def _ids(values: list[int] | None) -> str:
    return ",".join(str(v) for v in values or []) or "none"


_TELLERS: dict[str, Callable[[Event], str]] = {
    "ChoreRequested": _requested,
    "ChoreWaiting": _waiting,
    "ChoreAssigned": _assigned,
    "ChoreRefused": _refused,
    "ChoreStarted": _started,
    "ChoreCancelRequested": _cancel_requested,
    "ChoreEnded": _ended,
    "ChoresArchived": _archived,
    "SailorPreregistered": _preregistered,
    "SailorUpdated": _updated,
    "SailorRemoved": _removed,
    "SailorRegistered": _registered,
    "SailorWentDown": _went_down,
    "UserUpserted": _user,
}
