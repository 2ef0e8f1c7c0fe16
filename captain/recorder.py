"""The single writer of the captain's state: events are applied, then made durable.

`record()` stamps the events, applies them to the projected state at once (so the check that
allowed them and their effect cannot interleave with another request, the event loop being
single-threaded) and returns an awaitable that completes once they are durable. If the log
cannot be written, every waiting caller gets an error and the state is rebuilt from what the
log durably holds.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from common.clock import CLOCK, Clock
from eventlog.codec import encode_line
from eventlog.events import AnyEvent
from eventlog.store import EventStore, WriteFailed
from projections.state import State, apply

log = logging.getLogger(__name__)

Listener = Callable[[AnyEvent], None]


class Recorder:
    def __init__(self, log_folder: Path, clock: Clock = CLOCK) -> None:
        self.clock = clock
        self.store = EventStore(log_folder)
        self.state = State()
        self.listeners: list[Listener] = []
        self.failed_writes = 0

    def load(self) -> int:
        """Replays the log into a fresh state; returns how many events were read."""
        self.state = State()
        count = 0
        for event in self.store.replay():
            apply(self.state, event)
            count += 1
        return count

    async def open(self) -> int:
        count = self.load()
        self.store.on_failure = self._rebuild_after_failure
        self.store.open_for_append(self.state.last_seq)
        return count

    async def close(self) -> None:
        await self.store.close()

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
            lines.append(encode_line(event))
        return asyncio.ensure_future(self._make_durable(lines, events))

    async def _make_durable(self, lines: list[bytes], events: tuple[AnyEvent, ...]) -> None:
        await self.store.append(lines)
        for event in events:
            for listener in self.listeners:
                listener(event)

    def _rebuild_after_failure(self, error: WriteFailed) -> None:
        self.failed_writes += 1
        log.warning("captain: rebuilding state from the log after a failed write: %s", error)
        self.load()
