"""Run-time limits the captain enforces itself: a sailor's max_time, a user's time_limit.

Run time is measured on the captain's monotonic clock from the moment it learned that the
chore started. After a restart of the captain, a running chore's run time so far is taken
from the wall-clock start the log recorded (the best the captain still knows); the sailor
enforces the max_time it was given with the chore on its own monotonic clock meanwhile.

A chore over a limit gets a cancel request with its reason, recorded first and then sent to
its sailor; a chore already asked to stop is not counted or asked again.
"""

import logging
from typing import TYPE_CHECKING

import msgspec

from eventlog import events as ev
from projections.state import ChoreState

if TYPE_CHECKING:
    from captain.core import Captain

log = logging.getLogger(__name__)

EXCEEDED_TIME_LIMIT = "exceeded time limit"
EXCEEDED_USER_TIME_LIMIT = "exceeded user time limit"
BY_CAPTAIN = -1  # the `by` of a cancel the captain asks for itself, not a user


class Stop(msgspec.Struct, frozen=True):
    chore_id: str
    sailor: str
    reason: str


class RunClock:
    """When each running chore started, on the captain's monotonic clock."""

    def __init__(self, captain: "Captain") -> None:
        self.captain = captain
        self._started_mono: dict[str, float] = {}

    def note_loaded_chores(self) -> None:
        now_mono, now_wall = self.captain.clock.monotonic(), self.captain.clock.wall()
        for chore_id, chore in self.captain.state.chores.items():
            if chore.status == "running" and chore.start is not None:
                self._started_mono[chore_id] = now_mono - max(0.0, now_wall - chore.start)

    def note_started(self, chore_id: str) -> None:
        self._started_mono.setdefault(chore_id, self.captain.clock.monotonic())

    def elapsed_s(self, chore_id: str) -> float:
        """Seconds the chore has run; a chore not seen starting counts from now on."""
        now = self.captain.clock.monotonic()
        return now - self._started_mono.setdefault(chore_id, now)

    def forget_ended(self) -> None:
        chores = self.captain.state.chores
        for chore_id in list(self._started_mono):
            chore = chores.get(chore_id)
            if chore is None or chore.status in ev.ENDED_STATUSES:
                del self._started_mono[chore_id]


def overdue(captain: "Captain", clock: RunClock) -> list[Stop]:
    """The running chores to stop now: past their sailor's max_time, or over a user's budget."""
    clock.forget_ended()
    running = [c for c in captain.state.chores.values()
               if c.status == "running" and c.cancel_reason is None and c.sailor is not None]
    stops = _past_max_time(captain, clock, running)
    stopped = {s.chore_id for s in stops}
    stops += _over_user_budget(captain, clock, [c for c in running if c.chore_id not in stopped])
    return stops


def _past_max_time(captain: "Captain", clock: RunClock, running: list[ChoreState]
                   ) -> list[Stop]:
    stops = []
    for chore in running:
        sailor = captain.state.sailors.get(chore.sailor or "")
        if sailor is None or sailor.max_time_s is None:
            continue
        elapsed_s = clock.elapsed_s(chore.chore_id)
        if elapsed_s >= sailor.max_time_s:
            log.info("limits: chore=%s ran %.1f s on sailor=%s (max_time %d s): stopping it",
                     chore.chore_id, elapsed_s, sailor.name, sailor.max_time_s)
            stops.append(Stop(chore.chore_id, sailor.name, EXCEEDED_TIME_LIMIT))
    return stops


def _over_user_budget(captain: "Captain", clock: RunClock, running: list[ChoreState]
                      ) -> list[Stop]:
    """Newest first, a user's running chores are stopped until the rest fit the budget."""
    stops = []
    for uid, user in captain.state.users.items():
        if user.time_limit_s is None:
            continue
        mine = [c for c in running if str(c.owner) == uid]
        elapsed = {c.chore_id: clock.elapsed_s(c.chore_id) for c in mine}
        mine.sort(key=lambda c: (elapsed[c.chore_id], -int(c.chore_id)), reverse=True)
        total_s = sum(elapsed.values())
        while mine and total_s > user.time_limit_s:
            newest = mine.pop()
            total_s -= elapsed[newest.chore_id]
            log.info("limits: user=%s runs %.1f s at once (time_limit %d s): stopping "
                     "chore=%s", user.name, total_s + elapsed[newest.chore_id],
                     user.time_limit_s, newest.chore_id)
            stops.append(Stop(newest.chore_id, newest.sailor or "", EXCEEDED_USER_TIME_LIMIT))
    return stops


def cancel_events(stops: list[Stop]) -> list[ev.AnyEvent]:
    return [ev.ChoreCancelRequested(chore_id=s.chore_id, reason=s.reason, by=BY_CAPTAIN)
            for s in stops]
