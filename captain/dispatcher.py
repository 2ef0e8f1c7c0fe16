"""The scheduler's hands: it places pending chores and sends them to their sailors.

Each time something that may free or add room happens, every pending chore is examined again
in the order it was asked for. When only new chores came since the last pass (no room freed,
no sailor changed, nobody waiting long enough for a kept sailor), the chores seen before would
get the same answers again, so that pass looks at the new chores alone. A placement is
recorded (and made durable) before the order leaves; the sailor's answer is recorded in
turn. A sailor that says no, or does not answer in time, is passed over for that chore for a
while; one that did not answer is also told to drop the chore, so that a chore never runs on
two sailors.
"""

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import msgspec

from captain.scheduler import CrewIndex, Placement, Reservation, Wait, keep_for, place
from common import messages as msg
from eventlog import events as ev
from projections.state import ChoreState, State

if TYPE_CHECKING:
    from captain.core import Captain

log = logging.getLogger(__name__)

PASS_OVER_S = 30.0

# A pass deciding for this many chores or more first sorts the crew (a crew index): that
# costs about as much as looking at every sailor once, and saves it for each later chore.
INDEX_FROM_CHORES = 8

# Events after which every decision of the last pass still holds: they add chores, note
# reasons, or take room the last pass counted; none frees room or changes a sailor.
_KEEP_DECISIONS = (ev.ChoreRequested, ev.ChoreWaiting, ev.ChoreAssigned, ev.ChoreStarted)

Shape = tuple[object, ...]


class Dispatcher:
    def __init__(self, captain: "Captain") -> None:
        self.captain = captain
        self._wakeup = asyncio.Event()
        self._passed_over: dict[str, dict[str, float]] = {}
        self._orders: set[asyncio.Task[None]] = set()
        self._pending_since: dict[str, float] = {}
        self.reservation: Reservation | None = None
        self._waits: dict[Shape, Wait] = {}
        self._decisions_hold = False
        self._seen_state: State | None = None
        self._seen_chore_number = 0
        captain.recorder.on_applied.append(self._note_applied)

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                self.place_pending()
            except Exception:
                log.exception("dispatcher: a scheduling pass failed")
            await asyncio.sleep(0)

    async def stop(self) -> None:
        for task in list(self._orders):
            task.cancel()
        await asyncio.gather(*self._orders, return_exceptions=True)

    def place_pending(self) -> None:
        """One scheduling pass: over the new chores alone when that gives the same answers,
        else over every pending chore, oldest first."""
        state = self.captain.state
        if self._only_new_chores_changed(state):
            new = (str(n) for n in range(self._seen_chore_number + 1,
                                         state.last_chore_number + 1))
            self._decide([c for c in new if c in state.pending], self._waits, self.reservation)
        else:
            self._forget_ended_waits()
            self._decide(list(state.pending), {}, None)
        self._decisions_hold = True
        self._seen_state = state
        self._seen_chore_number = state.last_chore_number

    def _decide(self, chore_ids: list[str], waits: dict[Shape, Wait],
                reservation: Reservation | None) -> None:
        """Places or holds these pending chores, in this order.

        A pass only takes room, never frees it: once a chore has to wait, every later chore
        of the same shape waits for the same reason, and is not placed again in this pass.
        """
        state = self.captain.state
        recorder = self.captain.recorder
        index = CrewIndex(state) if len(chore_ids) >= INDEX_FROM_CHORES else None
        for chore_id in chore_ids:
            chore = state.chores[chore_id]
            passed_over = self._passed_over_for(chore_id)
            shape = None if passed_over else _shape(chore)
            decision: Placement | Wait | None = waits.get(shape) if shape is not None else None
            if decision is None:
                decision = place(state, chore, passed_over, reservation, index)
                if isinstance(decision, Wait) and shape is not None:
                    waits[shape] = decision
            if isinstance(decision, Wait) and reservation is None and self._starving(chore_id):
                reservation = keep_for(state, chore, passed_over)
                if reservation is not None:
                    # Later chores now wait for another reason: the kept sailor.
                    waits.clear()
                    decision = Wait(f"{decision.reason}; sailor {reservation.sailor} is kept "
                                    "for it")
            if isinstance(decision, Placement):
                log.info("dispatcher: chore=%s assigned to sailor=%s cores=%s gpus=%s",
                         chore_id, decision.sailor, decision.cores, decision.gpu_ids)
                durable = recorder.record(ev.ChoreAssigned(
                    chore_id=chore_id, sailor=decision.sailor, cores=decision.cores,
                    gpu_ids=decision.gpu_ids))
                if index is not None:
                    index.changed(decision.sailor)
                self._spawn(self._send_order(chore_id, decision.sailor, durable))
            elif chore.reason != decision.reason:
                self._spawn(_ignore_failure(recorder.record(
                    ev.ChoreWaiting(chore_id=chore_id, reason=decision.reason))))

        if reservation != self.reservation:
            log.info("dispatcher: reservation now %s", reservation or "none")
        self.reservation = reservation
        self._waits = waits

    def _note_applied(self, event: ev.AnyEvent) -> None:
        if not isinstance(event, _KEEP_DECISIONS):
            self._decisions_hold = False

    def _only_new_chores_changed(self, state: State) -> bool:
        """Whether a full pass now would give every chore the last pass saw the same answer.

        It would unless room was freed or a sailor changed (seen by event type), the state
        was rebuilt, a sailor is kept (which one depends on the load), a pending chore has
        waited long enough to have one kept, or a pending chore was passed over (that ends
        with time, not with an event).
        """
        if not self._decisions_hold or state is not self._seen_state:
            return False
        if self.reservation is not None:
            return False
        old_enough_at = self.captain.clock.monotonic() - self.captain.settings.reserve_after_s
        for chore_id, since in self._pending_since.items():
            if since > old_enough_at:
                break
            if chore_id in state.pending:
                return False
        return not any(entries and chore_id in state.pending
                       for chore_id, entries in self._passed_over.items())

    def _starving(self, chore_id: str) -> bool:
        """Whether a pending chore has waited long enough to have a sailor kept for it.

        The wait is counted from when this captain first saw the chore pending: after a
        restart it starts again from zero.
        """
        now = self.captain.clock.monotonic()
        since = self._pending_since.setdefault(chore_id, now)
        return now - since >= self.captain.settings.reserve_after_s

    def _forget_ended_waits(self) -> None:
        chores = self.captain.state.chores
        for remembered in (self._pending_since, self._passed_over):
            for chore_id in list(remembered):
                chore = chores.get(chore_id)
                if chore is None or chore.status in ev.ENDED_STATUSES:
                    del remembered[chore_id]

    def check_starving(self) -> None:
        """Asks for a pass when a waiting chore has just become old enough for a reservation
        (nothing else would wake the dispatcher then); called every housekeeping round."""
        if self.reservation is None and any(self._starving(c) for c in self.captain.state.pending):
            self.wake()

    def _passed_over_for(self, chore_id: str) -> frozenset[str]:
        entries = self._passed_over.get(chore_id)
        if not entries:
            return frozenset()
        now = self.captain.clock.monotonic()
        for name, until in list(entries.items()):
            if until <= now:
                del entries[name]
        return frozenset(entries)

    def sailor_woke(self, sailor: str) -> None:
        """A sailor that (re)registers gets a fresh chance at the chores it passed over."""
        for entries in self._passed_over.values():
            entries.pop(sailor, None)

    def _pass_over(self, chore_id: str, sailor: str) -> None:
        until = self.captain.clock.monotonic() + PASS_OVER_S
        self._passed_over.setdefault(chore_id, {})[sailor] = until

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._orders.add(task)
        task.add_done_callback(self._orders.discard)

    async def _send_order(self, chore_id: str, sailor: str, durable: Awaitable[None]) -> None:
        recorder = self.captain.recorder
        try:
            await durable
        except Exception:
            return
        chore = self.captain.state.chores.get(chore_id)
        if chore is None or chore.status != "assigned" or chore.sailor != sailor:
            return
        order = msg.ChoreOrder(
            chore_id=chore_id, script=chore.script, owner=chore.owner, cores=chore.cores,
            gpu_ids=chore.gpu_ids, ram=chore.ram,
            max_time_s=self.captain.state.sailors[sailor].max_time_s,
            assignment=chore.assignment,
        )
        try:
            data = await self.captain.call_sailor(
                sailor, "/captain_request", order, self.captain.settings.order_timeout_s)
            answer = msgspec.json.decode(data, type=msg.OrderAnswer)
        except Exception as exc:
            log.warning("dispatcher: sailor=%s did not take chore=%s: %s",
                        sailor, chore_id, exc or type(exc).__name__)
            self._pass_over(chore_id, sailor)
            await _ignore_failure(recorder.record(ev.ChoreRefused(
                chore_id=chore_id, sailor=sailor, reason=f"sailor {sailor} did not answer")))
            await self.send_cancel(chore_id, sailor, "not answered in time", order.assignment)
            return
        chore = self.captain.state.chores.get(chore_id)
        if chore is None or chore.sailor != sailor:
            return
        if not answer.accepted:
            log.info("dispatcher: sailor=%s refused chore=%s: %s", sailor, chore_id, answer.reason)
            self._pass_over(chore_id, sailor)
            await _ignore_failure(recorder.record(ev.ChoreRefused(
                chore_id=chore_id, sailor=sailor,
                reason=f"sailor {sailor} refused: {answer.reason}")))
            return
        if chore.status == "assigned":
            log.info("dispatcher: chore=%s started on sailor=%s pid=%s",
                     chore_id, sailor, answer.pid)
            await _ignore_failure(recorder.record(ev.ChoreStarted(
                chore_id=chore_id, sailor=sailor, pid=answer.pid or 0,
                memory_limit=answer.memory_limit)))
        if chore.cancel_reason is not None:
            await self.send_cancel(chore_id, sailor, chore.cancel_reason)

    async def send_cancel(self, chore_id: str, sailor: str, reason: str,
                          assignment: int | None = None) -> None:
        """Tells a sailor to stop a chore (or withdraws one placement of it, when
        `assignment` names it); a lost message is sent again at the sailor's next call."""
        if sailor not in self.captain.state.sailors:
            return
        order = msg.CancelOrder(chore_id=chore_id, reason=reason, assignment=assignment)
        try:
            await self.captain.call_sailor(
                sailor, "/captain_cancels", order, self.captain.settings.sailor_call_timeout_s)
        except Exception as exc:
            log.warning("dispatcher: cancel of chore=%s not delivered to sailor=%s: %s",
                        chore_id, sailor, exc or type(exc).__name__)

    def cancel_later(self, chore_id: str, sailor: str, reason: str) -> None:
        self._spawn(self.send_cancel(chore_id, sailor, reason))

    def cancel_at(self, address: tuple[str, int], chore_ids: list[str], reason: str) -> None:
        """Tells a sailor no longer in the crew list to stop chores (one try each)."""
        self._spawn(self._cancel_at(address, chore_ids, reason))

    async def _cancel_at(self, address: tuple[str, int], chore_ids: list[str],
                         reason: str) -> None:
        timeout_s = self.captain.settings.sailor_call_timeout_s
        for chore_id in chore_ids:
            order = msg.CancelOrder(chore_id=chore_id, reason=reason)
            try:
                await self.captain.call_address(address, "/captain_cancels", order, timeout_s)
            except Exception as exc:
                log.warning("dispatcher: cancel of chore=%s not delivered to %s:%d: %s",
                            chore_id, address[0], address[1], exc or type(exc).__name__)


def _shape(chore: ChoreState) -> Shape:
    """What place() reads of a chore: two chores of one shape get the same answer."""
    return (chore.owner, chore.service, chore.sailor_asked, chore.cpus, chore.gpus,
            chore.gpu_type, chore.vram, chore.ram)


async def _ignore_failure(durable: Awaitable[None]) -> None:
    """For events whose loss is repaired by the next pass (the log error is logged once)."""
    try:
        await durable
    except Exception:
        pass
