"""Takes snapshots of the recorder's state every so many events, off the request path.

The state is encoded at once on the event loop (the only place it changes), at a moment when
it may hold events still being made durable. The encoded bytes go to a synced temp file in a
thread; the file is renamed into place only once every event it holds is durable. If their
write fails instead, the temp file is thrown away: a snapshot never holds an event the log
does not.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING

from projections import snapshots
from projections.state import State

if TYPE_CHECKING:
    from captain.recorder import Recorder

log = logging.getLogger(__name__)


class Snapshotter:
    def __init__(self, recorder: "Recorder", folder: Path, every_events: int) -> None:
        self.recorder = recorder
        self.folder = folder
        self.every_events = every_events
        self.snapshot_seq = 0
        self.taken = 0
        self._task: asyncio.Task[None] | None = None

    def load(self) -> tuple[State, float] | None:
        """The newest snapshot that reads back, if any."""
        found = snapshots.newest(self.folder)
        if found is not None:
            self.snapshot_seq = found[0].last_seq
        return found

    def note_durable(self, seq: int) -> None:
        """Called after each durable batch: starts a snapshot when enough events passed."""
        if self.every_events <= 0 or seq - self.snapshot_seq < self.every_events:
            return
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.ensure_future(self.take())

    async def take(self) -> None:
        """Encodes the state now; writes it; puts it in place once its events are durable."""
        recorder = self.recorder
        state, at, latest = recorder.state, recorder.last_at, recorder.latest
        seq = state.last_seq
        failures_before = recorder.failed_writes
        data = snapshots.encode(state, at)
        self.snapshot_seq = seq
        try:
            temp = await asyncio.to_thread(snapshots.write_temp, self.folder, data, seq)
        except OSError as exc:
            log.warning("snapshots: could not write the snapshot at seq=%d: %s", seq, exc)
            return
        if not await _succeeds(latest) or recorder.failed_writes != failures_before:
            log.warning("snapshots: dropped the snapshot at seq=%d: its events were not "
                        "all made durable", seq)
            temp.unlink(missing_ok=True)
            self.snapshot_seq = recorder.state.last_seq
            return
        try:
            path = await asyncio.to_thread(snapshots.put_in_place, temp, seq)
        except OSError as exc:
            log.warning("snapshots: could not put the snapshot at seq=%d in place: %s",
                        seq, exc)
            temp.unlink(missing_ok=True)
            return
        self.taken += 1
        log.info("snapshots: state at seq=%d saved to %s (%d bytes)", seq, path, len(data))

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


async def _succeeds(durable: Awaitable[None] | None) -> bool:
    if durable is None:
        return True
    try:
        await durable
    except Exception:
        return False
    return True
