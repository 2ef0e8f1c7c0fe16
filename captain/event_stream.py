"""`GET /events`: the log's events as server-sent events, each sent once it is durable.

A watcher asks for events live, optionally from a position (`Last-Event-ID` or `?since=`):
the events after that position are read from the log first, then the live ones follow, each
once, in seq order. Filters: `?chore=ID`, `?sailor=NAME`, `?user=NAME`.

What a watcher sees depends on who it is. Root sees every event. A user sees the crew's
events, the whole events of their own chores, and of other users' chores only what reveals
neither who asked nor what runs (ids, sailor, status, times). A watcher the captain cannot
identify (a browser without a login) sees the same as a user with no chores.
"""

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Iterator
from typing import Any

import msgspec
from aiohttp import web

from captain.chores import Caller
from captain.core import Captain
from common.refusals import Refusal, bad_request, forbidden
from eventlog import events as ev
from eventlog.reader import read_events

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
MAX_BACKLOG = 10_000
REPLAY_CHUNK = 1000

SAILOR_EVENTS = (ev.SailorPreregistered, ev.SailorUpdated, ev.SailorRemoved,
                 ev.SailorRegistered, ev.SailorWentDown)
# What any watcher may see of another user's chore event.
PUBLIC_CHORE_FIELDS = frozenset({"type", "v", "seq", "at", "chore_id", "chore_ids", "sailor",
                                 "status", "reason", "exit_code", "signal", "cores", "gpu_ids"})
_CLOSE = object()


class Owner(msgspec.Struct, frozen=True):
    uid: int
    name: str


class Filters(msgspec.Struct, frozen=True):
    chore: str | None = None
    sailor: str | None = None
    user: str | None = None


class Watcher:
    """One open stream: who watches, what it asked for, and the events waiting to be sent."""

    def __init__(self, caller: Caller | None, filters: Filters) -> None:
        self.caller = caller
        self.filters = filters
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.overflowed = False

    def offer(self, item: Any) -> None:
        if self.queue.qsize() >= MAX_BACKLOG:
            self.overflowed = True
            self.queue.put_nowait(_CLOSE)
            return
        self.queue.put_nowait(item)


class EventHub:
    """Fans durable events out to the open streams; remembers whose each chore is."""

    def __init__(self, captain: Captain) -> None:
        self.captain = captain
        self.watchers: set[Watcher] = set()
        self.owners: dict[str, Owner] = {}
        captain.recorder.listeners.append(self.on_durable)

    def prime(self) -> None:
        """At start every event in the state is durable: learn the owners from it."""
        state = self.captain.state
        for chore in state.chores.values():
            self.owners[chore.chore_id] = Owner(chore.owner, chore.owner_name)

    def on_durable(self, event: ev.AnyEvent) -> None:
        if isinstance(event, ev.ChoreRequested):
            self.owners[event.chore_id] = Owner(event.owner, event.owner_name)
        for watcher in list(self.watchers):
            if not watcher.overflowed:
                watcher.offer(event)
        if isinstance(event, ev.ChoresArchived):
            for chore_id in event.chore_ids:
                self.owners.pop(chore_id, None)

    def close_all(self) -> None:
        for watcher in self.watchers:
            watcher.queue.put_nowait(_CLOSE)

    # --- what a watcher sees ----------------------------------------------------------------

    def frame(self, watcher: Watcher, event: ev.AnyEvent,
              owners: dict[str, Owner] | None = None) -> bytes | None:
        """The SSE frame of an event for this watcher, or None if it is not for them."""
        data = self.visible_part(watcher, event, owners or self.owners)
        if data is None:
            return None
        body = msgspec.json.encode(data).decode()
        return f"id: {event.seq}\nevent: {data['type']}\ndata: {body}\n\n".encode()

    def visible_part(self, watcher: Watcher, event: ev.AnyEvent,
                     owners: dict[str, Owner]) -> dict[str, Any] | None:
        caller, wanted = watcher.caller, watcher.filters
        data: dict[str, Any] = msgspec.to_builtins(event)
        is_root = caller is not None and caller.is_admin

        if isinstance(event, ev.UserUpserted):
            if wanted.chore or wanted.sailor:
                return None
            mine = caller is not None and caller.uid == event.uid
            return data if is_root or mine else None

        if isinstance(event, SAILOR_EVENTS):
            if wanted.chore or wanted.user or (wanted.sailor and event.name != wanted.sailor):
                return None
            if caller is None:
                data.pop("by", None)
            return data

        if isinstance(event, ev.ChoresArchived):
            ids = [c for c in event.chore_ids if self._chore_matches(c, None, wanted, owners)]
            if not ids:
                return None
            data["chore_ids"] = ids
            return data

        chore_id: str = data["chore_id"]
        if not self._chore_matches(chore_id, data.get("sailor"), wanted, owners):
            return None
        owner = owners.get(chore_id)
        if is_root or (caller is not None and owner is not None and owner.uid == caller.uid):
            return data
        return {k: v for k, v in data.items() if k in PUBLIC_CHORE_FIELDS}

    def _chore_matches(self, chore_id: str, sailor: str | None, wanted: Filters,
                       owners: dict[str, Owner]) -> bool:
        if wanted.chore is not None and chore_id != wanted.chore:
            return False
        if wanted.user is not None:
            owner = owners.get(chore_id)
            if owner is None or owner.name != wanted.user:
                return False
        if wanted.sailor is not None:
            if sailor is None:
                chore = self.captain.state.chores.get(chore_id)
                sailor = chore.sailor if chore is not None else None
            if sailor != wanted.sailor:
                return False
        return True


HUB_KEY = web.AppKey("event_hub", EventHub)


def install(app: web.Application, captain: Captain) -> None:
    """Adds `GET /events` to the captain's application."""
    hub = EventHub(captain)
    app[HUB_KEY] = hub

    async def prime(app: web.Application) -> None:
        hub.prime()

    async def close_streams(app: web.Application) -> None:
        hub.close_all()

    app.on_startup.append(prime)
    app.on_shutdown.append(close_streams)
    app.router.add_get("/events", stream_events)


def identify(request: web.Request) -> Caller | None:
    from captain.http_api import caller_of

    try:
        return caller_of(request)
    except Refusal:
        return None


def read_filters(request: web.Request, caller: Caller | None) -> Filters:
    query = request.query
    filters = Filters(chore=query.get("chore") or None, sailor=query.get("sailor") or None,
                      user=query.get("user") or None)
    if filters.chore is not None and not filters.chore.isdecimal():
        raise bad_request(f"chore must be a chore id (a number), got '{filters.chore}'", "chore")
    others = filters.user is not None and (caller is None or caller.name != filters.user)
    if others and not (caller is not None and caller.is_admin):
        raise forbidden("only root may follow another user's chores (user=NAME)")
    return filters


def read_since(request: web.Request) -> int | None:
    text = request.headers.get("Last-Event-ID") or request.query.get("since")
    if text is None or text == "":
        return None
    if not text.isdecimal():
        raise bad_request(f"since must be an event seq (a number), got '{text}'", "since")
    return int(text)


async def stream_events(request: web.Request) -> web.StreamResponse:
    hub: EventHub = request.app[HUB_KEY]
    caller = identify(request)
    filters = read_filters(request, caller)
    since = read_since(request)
    watcher = Watcher(caller, filters)
    hub.watchers.add(watcher)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })
    try:
        await response.prepare(request)
        await response.write(b": captain events\n\n")
        durable_seq = hub.captain.recorder.durable_seq
        last_sent = durable_seq if since is None else since
        if since is not None:
            last_sent = await _replay(hub, watcher, response, since, durable_seq)
        await _follow(hub, watcher, response, last_sent)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.watchers.discard(watcher)
    return response


async def _replay(hub: EventHub, watcher: Watcher, response: web.StreamResponse,
                  since: int, up_to_seq: int) -> int:
    """Sends the logged events after `since` up to what was durable when the stream opened."""
    folder = hub.captain.recorder.store.folder
    # Owners come from the chores in the views and the requests replayed here: a chore
    # requested before `since` and archived since then has no known owner, and even its
    # owner sees only the public part of its events.
    owners = dict(hub.owners)
    events: Iterator[ev.AnyEvent] = read_events(folder, since, up_to_seq)
    last_sent = since
    while True:
        chunk = await asyncio.to_thread(list, itertools.islice(events, REPLAY_CHUNK))
        if not chunk:
            return max(last_sent, up_to_seq)
        frames = []
        for event in chunk:
            if isinstance(event, ev.ChoreRequested):
                owners[event.chore_id] = Owner(event.owner, event.owner_name)
            frame = hub.frame(watcher, event, owners)
            if frame is not None:
                frames.append(frame)
            last_sent = event.seq
        if frames:
            await response.write(b"".join(frames))


async def _follow(hub: EventHub, watcher: Watcher, response: web.StreamResponse,
                  last_sent: int) -> None:
    while True:
        try:
            item = await asyncio.wait_for(watcher.queue.get(), KEEPALIVE_S)
        except TimeoutError:
            await response.write(b": keep-alive\n\n")
            continue
        if item is _CLOSE:
            if watcher.overflowed:
                log.warning("events: a watcher fell %d events behind; closed its stream "
                            "(it may reconnect with Last-Event-ID)", MAX_BACKLOG)
            with contextlib.suppress(ConnectionResetError):
                await response.write_eof()
            return
        if item.seq <= last_sent:
            continue
        frame = hub.frame(watcher, item)
        last_sent = item.seq
        if frame is not None:
            await response.write(frame)
