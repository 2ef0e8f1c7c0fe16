"""Tables for people: the views the endpoints return, printed with a header by rich.

On a terminal a table fits the window, and a cell too long for its column goes on over
more lines rather than being cut. Into a pipe or a file, each row stays on one line however
wide, so that grep finds a whole row with its full paths.
"""

import datetime
import sys
from typing import Any

# Wide enough for any row; rich makes a table only as wide as its cells need.
_PIPE_WIDTH = 100_000


def _when(instant: float | None) -> str:
    if not instant:
        return "-"
    return datetime.datetime.fromtimestamp(instant).strftime("%Y-%m-%d %H:%M:%S")


def _seen(instant: float | None) -> str:
    """The time alone when it is today, as a sailor seen lately mostly is; else as _when."""
    if not instant:
        return "-"
    moment = datetime.datetime.fromtimestamp(instant)
    if moment.date() == datetime.date.today():
        return moment.strftime("%H:%M:%S")
    return _when(instant)


def _gib(count: int | None) -> str:
    if not count:
        return "-"
    return f"{count / 2**30:.1f} GiB"


def _print(table: Any) -> None:
    from rich.console import Console

    Console(width=None if sys.stdout.isatty() else _PIPE_WIDTH).print(table)


def _table(title: str, columns: list[str]) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def chores(view: dict[str, dict[str, Any]], title: str) -> None:
    if not view:
        print(f"{title}: none")
        return
    table = _table(title, ["id", "owner", "status", "sailor", "cpus", "gpus", "script",
                           "started", "reason"])
    for chore in view.values():
        res = chore["ressources"]
        gpus = str(res["gpus"]) + (f" {res['gpu_type']}" if res.get("gpu_type") else "")
        table.add_row(chore["chore_id"], chore.get("owner_name") or str(chore["owner"]),
                      chore["status"], chore.get("sailor") or "-", str(res["cpus"]), gpus,
                      chore["script"], _when(chore.get("start")), chore.get("reason") or "")
    _print(table)


def chore(record: dict[str, Any], headline: str) -> None:
    table = _table(headline, ["field", "value"])
    res = record["ressources"]
    rows = [
        ("chore", record["chore_id"]), ("status", record["status"]),
        ("reason", record.get("reason") or ""), ("script", record["script"]),
        ("cpus", str(res["cpus"])), ("gpus", str(res["gpus"])),
        ("sailor", record.get("sailor") or "-"), ("stdout", record.get("stdout") or "-"),
        ("stderr", record.get("stderr") or "-"),
    ]
    if record.get("exit_code") is not None:
        rows.append(("exit code", str(record["exit_code"])))
    for key, value in rows:
        table.add_row(key, value)
    _print(table)


def crew(view: dict[str, dict[str, Any]]) -> None:
    if not view:
        print("crew: no sailors yet (add one with captain --prereg NAME IP services=...)")
        return
    table = _table("crew", ["sailor", "ip", "services", "status", "cpus used", "gpus used",
                            "ram", "chores", "max time", "last seen"])
    for sailor in view.values():
        gpus = len(sailor["gpus"])
        table.add_row(
            sailor["name"], sailor["ip"], ",".join(sailor["services"]), sailor["status"],
            f"{sailor['cpus_in_use']}/{sailor['cpus']}",
            f"{len(sailor['gpus_in_use'])}/{gpus}" if gpus else "-",
            _gib(sailor["ram"]), str(sailor["chores"]), sailor.get("max_time") or "none",
            _seen(sailor.get("last_seen")),
        )
    _print(table)


def users(view: dict[str, dict[str, Any]]) -> None:
    if not view:
        print("users: no limits set (set some with captain --user-set uid=UID ...)")
        return
    table = _table("users", ["uid", "name", "time limit", "chores limit", "notes"])
    for user in view.values():
        limit = user["chores_limit"]
        table.add_row(user["uid"], user["name"], user["time_limit"] or "none",
                      "none" if limit is None else str(limit), user["notes"])
    _print(table)
