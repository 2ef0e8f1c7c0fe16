"""Figures measured inside one process on a projected state: scheduling and memory.

The state is built the only way the captain builds it, by applying events; the scheduling
pass is the captain's own dispatcher pass, with a recorder that applies and encodes each
event as the real one does but leaves the disk out (the log has figures of its own).
"""

import asyncio
import gc
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from bench.figures import Figure
from common.clock import CLOCK
from eventlog import events as ev
from eventlog.codec import encode_line
from projections.state import State, apply

CORES_PER_SAILOR = 16


def crew_events(sailors: int) -> Iterator[ev.AnyEvent]:
    for i in range(sailors):
        name = f"s{i}"
        yield ev.SailorPreregistered(name=name, ip=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                                     services=["cpu"])
        yield ev.SailorRegistered(name=name, port=8751, cpus=CORES_PER_SAILOR,
                                  cores=list(range(CORES_PER_SAILOR)), gpus=[], ram=64 * 2**30)


def chore_events(chores: int, first: int = 1) -> Iterator[ev.ChoreRequested]:
    for number in range(first, first + chores):
        yield ev.ChoreRequested(chore_id=str(number), owner=1000, owner_name="alice",
                                script=f"/mnt/boat/alice/run-{number % 97}.sh", service="cpu")


def build(events: Iterator[ev.AnyEvent], state: State | None = None) -> State:
    state = state or State()
    for event in events:
        event.seq = state.last_seq + 1
        event.at = 1_700_000_000.0 + event.seq
        apply(state, event)
    return state


class _Recorder:
    """Applies and encodes events as the captain's recorder does, without the disk."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.encoded_bytes = 0
        self.on_applied: list[Callable[[ev.AnyEvent], None]] = []

    def record(self, *events: ev.AnyEvent) -> "asyncio.Future[None]":
        for event in events:
            event.seq = self.state.last_seq + 1
            event.at = CLOCK.wall()
            apply(self.state, event)
            for hook in self.on_applied:
                hook(event)
            self.encoded_bytes += len(encode_line(event))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _Captain:
    def __init__(self, state: State) -> None:
        from captain.settings import CaptainSettings

        self.recorder = _Recorder(state)
        self.clock = CLOCK
        self.settings = CaptainSettings(data_dir=Path("/nonexistent"))

    @property
    def state(self) -> State:
        return self.recorder.state


async def _timed_pass(state: State) -> float:
    from captain.dispatcher import Dispatcher

    dispatcher = Dispatcher(_Captain(state))  # type: ignore[arg-type]
    started = time.perf_counter()
    dispatcher.place_pending()
    elapsed_s = time.perf_counter() - started
    await dispatcher.stop()
    return elapsed_s


def scheduling(sailors: int, chores: int) -> list[Figure]:
    """One pass placing `chores` pending chores on `sailors` idle sailors, then one more
    pass over as many pending chores when every core is taken."""
    state = build(crew_events(sailors))
    build(chore_events(chores), state)
    place_s = asyncio.run(_timed_pass(state))
    placed = sum(1 for c in state.chores.values() if c.status == "assigned")
    slots_left = sailors * CORES_PER_SAILOR - placed
    build(chore_events(slots_left, first=chores + 1), state)
    asyncio.run(_timed_pass(state))
    build(chore_events(chores, first=chores + slots_left + 1), state)
    full_s = asyncio.run(_timed_pass(state))
    return [
        Figure(name=f"schedule_s[{chores} chores, {sailors} sailors]", value=place_s,
               unit="s", note=f"{placed} placed in one dispatcher pass"),
        Figure(name=f"schedule_s.full_crew[{chores} pending]", value=full_s, unit="s",
               note="a pass that finds every core taken (paid on each wake-up)"),
    ]


def memory_in_child(sailors: int, chores: int) -> dict[str, Any]:
    """Runs in a fresh interpreter with the captain's modules loaded; returns RSS figures."""
    import aiohttp.web  # noqa: F401  (the captain's own imports, for a true baseline)
    import psutil

    import captain.core  # noqa: F401

    me = psutil.Process()
    gc.collect()
    empty = me.memory_info().rss
    state = build(crew_events(sailors))
    for chore in chore_events(chores):
        build(iter([chore]), state)
        number = int(chore.chore_id)
        sailor = f"s{number % sailors}"
        cores = [number // sailors % CORES_PER_SAILOR]
        build(iter([ev.ChoreAssigned(chore_id=chore.chore_id, sailor=sailor, cores=cores,
                                     gpu_ids=[]),
                    ev.ChoreStarted(chore_id=chore.chore_id, sailor=sailor, pid=number)]),
              state)
    gc.collect()
    full = me.memory_info().rss
    running = sum(1 for c in state.chores.values() if c.status == "running")
    return {"empty_mb": empty / 2**20, "full_mb": full / 2**20, "running": running,
            "sailors": len(state.sailors)}


def memory(sailors: int, chores: int) -> list[Figure]:
    code = ("import sys, msgspec; from bench.in_process import memory_in_child; "
            f"sys.stdout.buffer.write(msgspec.json.encode(memory_in_child({sailors}, {chores})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=600,
                          check=True)
    result = msgspec.json.decode(done.stdout)
    return [Figure(
        name=f"captain_memory[{sailors} sailors, {chores} chores]", value=result["full_mb"],
        unit="MiB", note=f"RSS; {result['empty_mb']:.0f} MiB before the views were built, "
        f"{result['running']} chores running")]
