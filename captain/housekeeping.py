"""The captain's periodic duties: sailors that fell silent, ended chores to archive, and
running chores past a time limit.

Silence is judged on the captain's monotonic clock, never from a sailor's timestamps.
"""

import asyncio
import logging
from typing import TYPE_CHECKING

from captain import limits
from eventlog import events as ev

if TYPE_CHECKING:
    from captain.core import Captain

log = logging.getLogger(__name__)


class Housekeeping:
    def __init__(self, captain: "Captain") -> None:
        self.captain = captain
        self._ended_mono: dict[str, float] = {}
        self.run_clock = limits.RunClock(captain)

    def note_loaded_chores(self) -> None:
        """Chores that ended before a restart keep a full retention period from now."""
        now = self.captain.clock.monotonic()
        for chore_id, chore in self.captain.state.chores.items():
            if chore.status in ev.ENDED_STATUSES:
                self._ended_mono[chore_id] = now
        self.run_clock.note_loaded_chores()

    def note_ended(self, chore_id: str) -> None:
        self._ended_mono[chore_id] = self.captain.clock.monotonic()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.captain.settings.housekeeping_interval_s)
            try:
                await self.tick()
            except Exception:
                log.exception("housekeeping: a round failed")

    async def tick(self) -> None:
        events: list[ev.AnyEvent] = []
        events += self._silent_sailors()
        events += self._expired_chores()
        stops = limits.overdue(self.captain, self.run_clock)
        events += limits.cancel_events(stops)
        if events:
            try:
                await self.captain.recorder.record(*events)
            except Exception as exc:
                log.warning("housekeeping: could not record %d events: %s", len(events), exc)
                return
        for stop in stops:
            self.captain.dispatcher.cancel_later(stop.chore_id, stop.sailor, stop.reason)
        self.captain.dispatcher.check_starving()

    def _silent_sailors(self) -> list[ev.AnyEvent]:
        now = self.captain.clock.monotonic()
        limit = self.captain.settings.down_after_s
        found: list[ev.AnyEvent] = []
        for name, sailor in self.captain.state.sailors.items():
            if not sailor.up:
                continue
            silent_s = now - self.captain.last_seen_mono.get(name, now)
            if silent_s > limit:
                log.warning("housekeeping: sailor=%s silent for %.1f s, marked down",
                            name, silent_s)
                found.append(ev.SailorWentDown(name=name, silent_s=round(silent_s, 3)))
        return found

    def _expired_chores(self) -> list[ev.AnyEvent]:
        now = self.captain.clock.monotonic()
        keep_s = self.captain.settings.retention_s
        expired = [c for c, ended in self._ended_mono.items() if now - ended >= keep_s]
        for chore_id in expired:
            del self._ended_mono[chore_id]
        expired = sorted((c for c in expired if c in self.captain.state.chores), key=int)
        return [ev.ChoresArchived(chore_ids=expired)] if expired else []
