"""What the log remembers: a chore's whole story, the latest events, the views at an instant.

Everything here reads the log (and snapshots) in a thread, never blocking the event loop,
and only what is durable.

`GET /history?chore=ID` answers `{"chore_id": ID, "events": [...]}` with every event of that
chore, for its owner or root; `GET /history` answers the latest events (`?limit=N`, at most
10,000): all of them for root, the crew's and the caller's own chores' for a user.
"""

import asyncio
from pathlib import Path

import msgspec
from aiohttp import web

from captain.chores import Caller
from common.instants import parse_instant
from common.refusals import bad_request, forbidden, not_found
from eventlog import events as ev
from eventlog.reader import chore_needle, read_events, segments
from projections import snapshots
from projections.state import State, apply

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
CREW_EVENTS = (ev.SailorPreregistered, ev.SailorUpdated, ev.SailorRemoved,
               ev.SailorRegistered, ev.SailorWentDown)


def chore_story(log_folder: Path, chore_id: str, up_to_seq: int) -> list[ev.AnyEvent]:
    """Every durable event about one chore, oldest first.

    Scans every segment still in the log folder for the chore's id (lines without it are not
    decoded): about a second per few million events. Archived segments are not read.
    """
    found = []
    for event in read_events(log_folder, 0, up_to_seq, contains=chore_needle(chore_id)):
        if getattr(event, "chore_id", None) == chore_id or (
            isinstance(event, ev.ChoresArchived) and chore_id in event.chore_ids
        ):
            found.append(event)
    return found


def latest_events(log_folder: Path, caller: Caller, limit: int, up_to_seq: int,
                  owners: dict[str, int]) -> list[ev.AnyEvent]:
    """The newest `limit` durable events the caller may read, oldest first.

    Reads segments newest first and stops once it has enough.
    """
    kept: list[ev.AnyEvent] = []
    found = segments(log_folder)
    for index in range(len(found) - 1, -1, -1):
        first_seq = found[index][0]
        chunk = list(read_events(log_folder, first_seq - 1, up_to_seq)
                     if index == len(found) - 1
                     else _one_segment(log_folder, first_seq, found[index + 1][0] - 1))
        for event in chunk:
            if isinstance(event, ev.ChoreRequested):
                owners.setdefault(event.chore_id, event.owner)
        visible = [e for e in chunk if _may_read(caller, e, owners)]
        kept = visible + kept
        if len(kept) >= limit:
            break
    return kept[-limit:]


def _one_segment(log_folder: Path, first_seq: int, last_seq: int) -> list[ev.AnyEvent]:
    return list(read_events(log_folder, first_seq - 1, last_seq))


def _may_read(caller: Caller, event: ev.AnyEvent, owners: dict[str, int]) -> bool:
    if caller.is_admin or isinstance(event, CREW_EVENTS):
        return True
    if isinstance(event, ev.UserUpserted):
        return event.uid == caller.uid
    if isinstance(event, ev.ChoresArchived):
        return any(owners.get(c) == caller.uid for c in event.chore_ids)
    return owners.get(getattr(event, "chore_id", ""), -1) == caller.uid


def state_at(log_folder: Path, snapshot_folder: Path, instant: float,
             up_to_seq: int) -> State:
    """The projected state as it was at `instant`: a snapshot before it plus the log after."""
    before = next(snapshots.readable(snapshot_folder, up_to_seq, instant), None)
    state = before[0] if before is not None else State()
    for event in read_events(log_folder, state.last_seq, up_to_seq):
        if event.at > instant:
            break
        apply(state, event)
    return state


# --- endpoints ------------------------------------------------------------------------------


def _limit(request: web.Request) -> int:
    text = request.query.get("limit", str(DEFAULT_LIMIT))
    if not text.isdecimal() or not 1 <= int(text) <= MAX_LIMIT:
        raise bad_request(f"limit must be a number from 1 to {MAX_LIMIT}, got '{text}'",
                          "limit")
    return int(text)


async def history(request: web.Request) -> web.Response:
    from captain.http_api import caller_of, captain_of, json_response

    captain = captain_of(request)
    caller = caller_of(request)
    folder = captain.recorder.store.folder
    up_to_seq = captain.recorder.durable_seq
    chore_id = request.query.get("chore")
    if chore_id is None:
        limit = _limit(request)
        owners = {c.chore_id: c.owner for c in captain.state.chores.values()}
        found = await asyncio.to_thread(latest_events, folder, caller, limit, up_to_seq,
                                        owners)
        return json_response({"events": [msgspec.to_builtins(e) for e in found]})

    if not chore_id.isdecimal():
        raise bad_request(f"chore must be a chore id (a number), got '{chore_id}'", "chore")
    story = await asyncio.to_thread(chore_story, folder, chore_id, up_to_seq)
    if not story:
        raise not_found(f"no chore {chore_id} in the log", "chore")
    requested = story[0]
    owner = requested.owner if isinstance(requested, ev.ChoreRequested) else None
    if not caller.is_admin and owner != caller.uid:
        raise forbidden(f"chore {chore_id} belongs to another user")
    return json_response({"chore_id": chore_id, "events": [msgspec.to_builtins(e)
                                                           for e in story]})


async def past_state(request: web.Request) -> State | None:
    """The state at the request's `?at=` instant, or None when it asks for the present."""
    from captain.http_api import captain_of

    text = request.query.get("at")
    if text is None:
        return None
    try:
        instant = parse_instant(text)
    except ValueError as exc:
        raise bad_request(f"at: {exc}", "at") from None
    captain = captain_of(request)
    recorder = captain.recorder
    return await asyncio.to_thread(state_at, recorder.store.folder, recorder.snapshots.folder,
                                   instant, captain.recorder.durable_seq)


def install(app: web.Application) -> None:
    app.router.add_get("/history", history)
