"""The single writer of the captain's state: events are applied, then made durable.

`record()` stamps the events, applies them to the projected state at once (so the check that
allowed them and their effect cannot interleave with another request, the event loop being
single-threaded), tells the `on_applied` hooks, and returns an awaitable that completes once
they are durable. If the log cannot be written, every waiting caller gets an error and the
state is rebuilt from what the log durably holds.

A start (and a rebuild) reads the newest good snapshot and replays only the log after it;
the snapshotter writes a new snapshot every so many events.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from captain.snapshotter import Snapshotter
from common.clock import CLOCK, Clock
from eventlog.codec import encode_line
from eventlog.events import AnyEvent
from eventlog.store import EventStore
from projections.state import State, apply

log = logging.getLogger(__name__)

Listener = Callable[[AnyEvent], None]


class Recorder:
    def __init__(self, log_folder: Path, clock: Clock = CLOCK,
                 snapshot_every: int = 50_000) -> None:
        self.clock = clock
        self.store = EventStore(log_folder)
        self.state = State()
        self.listeners: list[Listener] = []
        self.on_applied: list[Listener] = []
        self.failed_writes = 0
        self.snapshots = Snapshotter(self, log_folder.parent / "snapshots", snapshot_every)
        self.last_at = 0.0
        self.latest: Awaitable[None] | None = None
        self.durable_seq = 0

    def load(self, durable_only: bool = False) -> int:
        """The newest good snapshot plus the log after it; returns how many events were read.

        `durable_only` is for a store already open: only what it made durable is read.
        """
        found = self.snapshots.load()
        self.state, self.last_at = found if found is not None else (State(), 0.0)
        replay = self.store.replay_durable if durable_only else self.store.replay
        count = 0
        for event in replay(self.state.last_seq):
            apply(self.state, event)
            self.last_at = event.at
            count += 1
        self.durable_seq = self.state.last_seq
        return count

    async def open(self) -> int:
        count = self.load()
        self.store.on_failure = self._rebuild_after_failure
        self.store.open_for_append(self.state.last_seq)
        return count

    async def close(self) -> None:
        await self.store.close()
        await self.snapshots.close()

    def record(self, *events: AnyEvent) -> Awaitable[None]:
        """Applies the events now; the result completes once they are durable."""
        if not events:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        now = self.clock.wall()
        lines = []
        for event in events:
            event.seq = self.state.last_seq + 1
            event.at = now
            apply(self.state, event)
            for hook in self.on_applied:
                hook(event)
            lines.append(encode_line(event))
        self.last_at = now
        self.latest = asyncio.ensure_future(self._make_durable(lines, events))
        return self.latest

    async def _make_durable(self, lines: list[bytes], events: tuple[AnyEvent, ...]) -> None:
        await self.store.append(lines)
        self.durable_seq = max(self.durable_seq, events[-1].seq)
        for event in events:
            for listener in self.listeners:
                listener(event)
        self.snapshots.note_durable(events[-1].seq)

    def _rebuild_after_failure(self, error: Exception) -> None:
        self.failed_writes += 1
        log.warning("captain: rebuilding state from the log after a failed write: %s", error)
        self.load(durable_only=True)
