"""Benchmarks of the event log: group commit under concurrent writers, and restart time.

`python -m bench.log_bench [--quick]` prints `name: value unit` lines; `measure()` returns
the same figures as dicts (name, value, unit, note) for the suite to print with the rest.

- group commit: N writers (1, 10, 100) each record an event and wait for it to be durable,
  again and again, on a real folder with real fsyncs; events per second and mean batch size.
- restart: a log of 10k, 100k and 1M real events (a crew of sailors running chores that end
  and are archived) with the snapshots a captain would have written, then a real
  `captain --serve` process is started on it and timed until it answers.
"""

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from captain.recorder import Recorder
from eventlog import events as ev
from eventlog.codec import encode_line
from eventlog.store import segment_name
from projections import snapshots
from projections.state import State, apply

Figure = dict[str, Any]
SNAPSHOT_EVERY = 50_000
SEGMENT_EVENTS = 200_000
SAILORS = 50


def figure(name: str, value: float, unit: str, note: str = "") -> Figure:
    return {"name": name, "value": value, "unit": unit, "note": note}


# --- group commit ---------------------------------------------------------------------------


async def _group_commit(folder: Path, writers: int, duration_s: float) -> tuple[float, float]:
    recorder = Recorder(folder / "log", snapshot_every=0)
    await recorder.open()
    batches = {"n": 0}
    real_write = recorder.store._write_durably

    def counted(data: bytes, count: int) -> None:
        batches["n"] += 1
        real_write(data, count)
    recorder.store._write_durably = counted  # type: ignore[method-assign]
    done = {"n": 0}
    stop_at = time.monotonic() + duration_s

    async def writer(number: int) -> None:
        while time.monotonic() < stop_at:
            await recorder.record(ev.ChoreWaiting(chore_id=str(number), reason="benchmark"))
            done["n"] += 1
    started = time.monotonic()
    await asyncio.gather(*(writer(n) for n in range(writers)))
    elapsed = time.monotonic() - started
    await recorder.close()
    return done["n"] / elapsed, done["n"] / max(1, batches["n"])


def group_commit(root: Path, writer_counts: tuple[int, ...] = (1, 10, 100),
                 duration_s: float = 3.0) -> list[Figure]:
    found = []
    for writers in writer_counts:
        folder = root / f"gc{writers}"
        rate, batch = asyncio.run(_group_commit(folder, writers, duration_s))
        found.append(figure(f"log_group_commit_{writers}_writers", rate, "events/s",
                            f"mean batch {batch:.1f} events, one fsync each"))
        shutil.rmtree(folder, ignore_errors=True)
    return found


# --- a long history -------------------------------------------------------------------------


def history(count: int) -> Iterator[ev.AnyEvent]:
    """`count` events of a busy crew: sailors wake, chores run and end, ended ones archive."""
    for number in range(SAILORS):
        yield ev.SailorPreregistered(name=f"s{number}", ip=f"10.1.{number // 250}.{number % 250}",
                                     services=["cpu"])
        yield ev.SailorRegistered(name=f"s{number}", port=8751, cpus=64,
                                  cores=list(range(64)), gpus=[], ram=256 * 2**30)
    produced = SAILORS * 2
    chore = 0
    ended: list[str] = []
    while True:
        chore += 1
        chore_id = str(chore)
        sailor = f"s{chore % SAILORS}"
        core = chore % 64
        steps: list[ev.AnyEvent] = [
            ev.ChoreRequested(chore_id=chore_id, owner=1000 + chore % 20,
                              owner_name=f"user{chore % 20}", script=f"/boat/u/job{chore}.sh",
                              service="cpu"),
            ev.ChoreAssigned(chore_id=chore_id, sailor=sailor, cores=[core], gpu_ids=[]),
            ev.ChoreStarted(chore_id=chore_id, sailor=sailor, pid=10_000 + chore),
            ev.ChoreEnded(chore_id=chore_id, status="done", reason="exit code 0", exit_code=0),
        ]
        ended.append(chore_id)
        if len(ended) >= 50:
            steps.append(ev.ChoresArchived(chore_ids=ended))
            ended = []
        for event in steps:
            if produced >= count:
                return
            produced += 1
            yield event


def write_history(data: Path, count: int, snapshot_every: int = SNAPSHOT_EVERY) -> None:
    """A captain data folder holding `count` events in segments, and its snapshots."""
    log_folder = data / "log"
    log_folder.mkdir(parents=True)
    state = State()
    file = None
    at = time.time() - count * 0.01
    for seq, event in enumerate(history(count), 1):
        event.seq, event.at = seq, at + seq * 0.01
        if (seq - 1) % SEGMENT_EVENTS == 0:
            if file is not None:
                file.close()
            file = open(log_folder / segment_name(seq), "wb")
        assert file is not None
        file.write(encode_line(event))
        apply(state, event)
        # Snapshots fall one event after each round number, so that a round-sized history
        # ends with the longest tail a captain would replay: the worst case.
        if snapshot_every and seq > 1 and seq % snapshot_every == 1:
            temp = snapshots.write_temp(data / "snapshots", snapshots.encode(state, event.at),
                                        seq)
            snapshots.put_in_place(temp, seq)
    if file is not None:
        file.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serving_again_s(data: Path) -> float:
    """Seconds from starting `captain --serve` on `data` until it answers /health."""
    port = free_port()
    captain = Path(sys.executable).parent / "captain"
    started = time.monotonic()
    process = subprocess.Popen([str(captain), "--serve", str(port), "--data", str(data)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = started + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    return time.monotonic() - started
            except OSError:
                time.sleep(0.01)
        raise TimeoutError("the captain did not answer within 120 s")
    finally:
        process.terminate()
        process.wait(timeout=30)


def load_s(data: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds of the captain's start-up read (snapshot plus tail), in-process."""
    started, cpu = time.monotonic(), time.process_time()
    recorder = Recorder(data / "log")
    replayed = recorder.load()
    return time.monotonic() - started, time.process_time() - cpu, replayed


def restart(root: Path, sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)) -> list[Figure]:
    found = []
    for count in sizes:
        data = root / f"restart{count}"
        write_history(data, count)
        label = f"{count // 1000}k" if count < 1_000_000 else f"{count // 1_000_000}M"
        wall_s, cpu_s, replayed = load_s(data)
        found.append(figure(f"log_load_{label}_events", wall_s, "s",
                            f"snapshot plus {replayed} events of tail, {cpu_s:.3f} s of CPU"))
        found.append(figure(f"log_restart_{label}_events", serving_again_s(data), "s",
                            f"until /health answers; snapshots every {SNAPSHOT_EVERY} events"))
        shutil.rmtree(data, ignore_errors=True)
    full = root / "full"
    count = sizes[min(1, len(sizes) - 1)]
    write_history(full, count, snapshot_every=0)
    wall_s, cpu_s, replayed = load_s(full)
    found.append(figure(f"log_load_full_replay_{count // 1000}k", wall_s, "s",
                        f"no snapshot: {replayed} events replayed, {cpu_s:.3f} s of CPU"))
    shutil.rmtree(full, ignore_errors=True)
    return found


def measure(quick: bool = False, folder: Path | None = None) -> list[Figure]:
    """Every log figure; `quick` uses smaller sizes (seconds instead of a minute or two)."""
    root = Path(tempfile.mkdtemp(prefix="captain-log-bench-", dir=folder))
    try:
        found = group_commit(root, duration_s=1.0 if quick else 3.0)
        found += restart(root, (2_000, 20_000) if quick else (10_000, 100_000, 1_000_000))
        return found
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--folder", type=Path, help="where to write (default: the temp dir)")
    args = parser.parse_args()
    print(f"# disk under test: {args.folder or tempfile.gettempdir()}, "
          f"{os.cpu_count()} cores", flush=True)
    for found in measure(args.quick, args.folder):
        note = f"  # {found['note']}" if found["note"] else ""
        print(f"{found['name']}: {found['value']:.3g} {found['unit']}{note}", flush=True)


if __name__ == "__main__":
    main()
