"""The CLI commands that read the event log: watch, history, the views at an instant, check.

`--watch`, `--history` and `--at` ask the captain's endpoints; `--check-log` reads the log
folder itself and needs no running captain.
"""

import json
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import click

from cli import arguments

WATCH_KEYS = ("chore", "sailor", "user")


def at_query(at: str | None) -> str:
    """`at=<epoch seconds>` for an instant given as ISO time or epoch seconds."""
    if at is None:
        return ""
    from common.instants import parse_instant

    try:
        instant = parse_instant(at)
    except ValueError as exc:
        raise arguments.BadArguments(f"--at: {exc}", "at") from None
    return urllib.parse.urlencode({"at": repr(instant)})


def watch(address: tuple[str, int], words: tuple[str, ...], as_json: bool) -> None:
    """Follows the events until Ctrl-C, or with chore=ID until that chore has ended."""
    from cli.client import CaptainUnreachable
    from cli.watch import StreamRefused, follow

    filters = arguments.split_pairs(words, WATCH_KEYS)
    if "chore" in filters and not filters["chore"].isdecimal():
        raise arguments.BadArguments(f"chore must be a chore id, got '{filters['chore']}'",
                                     "chore")
    for key in ("sailor", "user"):
        if key in filters:
            arguments.name(key, filters[key])
    try:
        since = None
        if "chore" in filters:
            since = _chore_so_far(address, filters["chore"], as_json)
            if since is None:
                return
        follow(address, filters, as_json, since)
    except StreamRefused as exc:
        raise arguments.BadArguments(str(exc), exc.field) from None
    except CaptainUnreachable as exc:
        raise arguments.BadArguments(str(exc)) from None


def _chore_so_far(address: tuple[str, int], chore_id: str, as_json: bool) -> int | None:
    """The seq to watch the chore from; None when it has ended already (its end is printed).
    """
    from cli import story
    from cli.client import call

    answer = call(address, "GET", f"/history?chore={chore_id}")
    if not answer.ok:
        refusal = answer.refusal() or {}
        raise arguments.BadArguments(answer.error(), refusal.get("field"))
    events: list[dict[str, Any]] = answer.json()["events"]
    end = next((e for e in events if e.get("type") == "ChoreEnded"), None)
    if end is None:
        return max((int(e.get("seq", 0)) for e in events), default=0)
    print(json.dumps(end, separators=(",", ":")) if as_json else story.line(end), flush=True)
    print(f"captain: chore {chore_id} had already ended (its story: captain --history "
          f"{chore_id})", file=sys.stderr)
    return None


def history_path(words: tuple[str, ...], limit: int | None) -> str:
    if len(words) > 1:
        raise arguments.BadArguments("usage: captain --history [CHORE_ID] [--json]")
    query: dict[str, str] = {}
    if words:
        if not words[0].isdecimal():
            raise arguments.BadArguments(f"a chore id is a number, got '{words[0]}'", "chore")
        if limit is not None:
            raise arguments.BadArguments("--limit goes with --history without a chore id: a "
                                         "chore's story is told whole", "limit")
        query["chore"] = words[0]
    if limit is not None:
        query["limit"] = str(limit)
    return "/history" + (f"?{urllib.parse.urlencode(query)}" if query else "")


def print_history(answer: dict[str, Any], chore_id: str | None) -> None:
    from cli import story

    events = answer.get("events", [])
    if not events:
        click.echo("no events" + (f" for chore {chore_id}" if chore_id else ""))
        return
    title = f"chore {chore_id}" if chore_id else f"the latest {len(events)} events"
    click.echo(f"{title}:")
    for event in events:
        click.echo(story.line(event))


def check_log(data_dir: Path | None, as_json: bool) -> int:
    from captain.settings import default_data_dir
    from eventlog.check import check_folder

    folder = (data_dir or default_data_dir("captain")).resolve()
    try:
        report = check_folder(folder / "log", folder / "snapshots")
    except PermissionError as exc:
        raise arguments.BadArguments(f"cannot read {exc.filename or folder}: permission "
                                     "denied (the log is the captain's: run as root)",
                                     "data") from None
    if not as_json:
        for line in report.lines():
            click.echo(line)
        return 0 if report.ok else 1
    found = report.as_dict()
    if not report.ok:
        count = len(report.problems)
        found["error"] = f"the log in {folder} has {count} problem{'s' * (count > 1)}"
    sys.stdout.write(json.dumps(found, separators=(",", ":")) + "\n")
    if not report.ok:
        click.echo(f"captain: {found['error']}", err=True)
    return 0 if report.ok else 1
