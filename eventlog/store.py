"""The durable, append-only event log: segment files of checksummed JSONL lines.

Appends are group-committed: every append waiting while the previous batch is being synced
joins the next batch, and the batch shares one write and one fsync. An append returns only
once its lines are durable; when a write fails, every append of the batch fails, the file is
cut back to its last durable size, and the store keeps going with the next batch.
"""

import asyncio
import logging
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from eventlog import faults
from eventlog.codec import BadLine, decode_line, seq_of, verify_line
from eventlog.events import AnyEvent

log = logging.getLogger(__name__)

SEGMENT_PATTERN = re.compile(r"^events-(\d{12})\.jsonl$")


class LogDamaged(Exception):
    """A line that is not the last one is bad: starting would silently drop history."""


class WriteFailed(Exception):
    """The batch holding this append could not be made durable."""


def segment_name(first_seq: int) -> str:
    return f"events-{first_seq:012d}.jsonl"


def first_seq_of(segment: Path) -> int:
    match = SEGMENT_PATTERN.match(segment.name)
    assert match is not None, f"{segment} is not a segment file"
    return int(match.group(1))


def fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EventStore:
    def __init__(self, folder: Path, *, segment_events: int = 200_000) -> None:
        self.folder = folder
        self.segment_events = segment_events
        self._fd: int | None = None
        self._segment_lines = 0
        self._durable_size = 0
        self._torn_tail = False
        self._queue: list[tuple[list[bytes], asyncio.Future[None]]] = []
        self._wake: asyncio.Event | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eventlog")
        self.on_failure: Callable[[Exception], None] | None = None

    # --- reading ----------------------------------------------------------------------------

    def segments(self) -> list[Path]:
        found = []
        for path in self.folder.glob("events-*.jsonl"):
            match = SEGMENT_PATTERN.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return [path for _, path in sorted(found)]

    def replay(self, after_seq: int = 0) -> Iterator[AnyEvent]:
        """Every durable event with a seq above `after_seq`, in order.

        A bad last line of the newest segment (a write cut short by a crash) is moved to a
        file beside the log with a warning; a bad line anywhere else raises LogDamaged.
        Lines at or below `after_seq` (covered by a snapshot) are checked, not decoded.
        """
        return self._replay(after_seq, repair=True)

    def replay_durable(self, after_seq: int = 0) -> Iterator[AnyEvent]:
        """Like replay(), for a store that is open: reads only what was made durable."""
        return self._replay(after_seq, repair=False)

    def _replay(self, after_seq: int, repair: bool) -> Iterator[AnyEvent]:
        segments = self.segments()
        for index, path in enumerate(segments):
            is_last = index == len(segments) - 1
            if not is_last:
                next_first = first_seq_of(segments[index + 1])
                if next_first <= after_seq + 1:
                    continue
            limit = None if repair or not is_last else self._durable_size
            yield from self._replay_segment(path, after_seq, is_last and repair, limit)

    def _replay_segment(self, path: Path, after_seq: int, is_last: bool,
                        limit: int | None = None) -> Iterator[AnyEvent]:
        with open(path, "rb") as file:
            data = file.read() if limit is None else file.read(limit)
        offset = _first_line_after(data, after_seq)
        line_number = data.count(b"\n", 0, offset)
        while offset < len(data):
            end = data.find(b"\n", offset)
            line_end = len(data) if end < 0 else end + 1
            line = data[offset:line_end]
            line_number += 1
            try:
                if _seq_at_most(line, after_seq):
                    offset = line_end
                    continue
                event = decode_line(line)
            except BadLine as exc:
                if is_last and line_end == len(data):
                    self._set_aside(path, offset, line, str(exc))
                    return
                raise LogDamaged(
                    f"{path}: line {line_number} is damaged ({exc}); the log needs repair "
                    f"before the captain can start (see 'captain --check-log')"
                ) from None
            if event.seq > after_seq:
                yield event
            offset = line_end

    def last_seq(self) -> int:
        """The seq of the newest line on disk (0 for an empty log)."""
        return self._last_seq_on_disk() if self.segments() else 0

    def _set_aside(self, path: Path, offset: int, line: bytes, why: str) -> None:
        aside = path.with_name(path.name + f".torn-at-{offset}")
        with open(aside, "wb") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
        with open(path, "r+b") as file:
            file.truncate(offset)
            os.fsync(file.fileno())
        log.warning("event log: the last line of %s was bad (%s); moved it to %s",
                    path, why, aside)

    # --- writing ----------------------------------------------------------------------------

    def open_for_append(self, last_seq: int) -> None:
        """Opens the newest segment (or a new one) and starts the writer."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        segments = self.segments()
        if segments:
            path = segments[-1]
            with open(path, "rb") as file:
                self._segment_lines = file.read().count(b"\n")
        else:
            path = self.folder / segment_name(last_seq + 1)
        self._open_segment(path)
        self._wake = asyncio.Event()
        self._writer_task = asyncio.get_running_loop().create_task(self._write_batches())

    def _open_segment(self, path: Path) -> None:
        created = not path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._durable_size = os.fstat(self._fd).st_size
        if created:
            fsync_folder(self.folder)

    async def append(self, lines: list[bytes]) -> None:
        """Returns once every line is durable; raises WriteFailed if its batch failed."""
        assert self._wake is not None, "open_for_append() was not called"
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((lines, future))
        self._wake.set()
        await future

    async def _write_batches(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            if not batch:
                continue
            data = b"".join(line for lines, _ in batch for line in lines)
            count = sum(len(lines) for lines, _ in batch)
            try:
                await loop.run_in_executor(self._executor, self._write_durably, data, count)
            except OSError as exc:
                self._fail(batch, exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _fail(self, batch: list[tuple[list[bytes], asyncio.Future[None]]], exc: OSError) -> None:
        """Fails the batch and everything queued behind it, which was built on top of it."""
        failed = batch + self._queue
        self._queue = []
        log.error("event log: write failed (%s); %d appends refused", exc, len(failed))
        error = WriteFailed(f"the event log could not be written: {exc.strerror or exc}")
        for _, future in failed:
            if not future.done():
                future.set_exception(error)
        if self.on_failure is not None:
            self.on_failure(error)

    def _write_durably(self, data: bytes, count: int) -> None:
        assert self._fd is not None
        if self._torn_tail:
            self._cut_back()
        try:
            if faults.armed("torn-write"):
                os.write(self._fd, data[:len(data) // 2])
                faults.crash()
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            if faults.armed("after-write-before-fsync"):
                faults.crash()
            os.fsync(self._fd)
        except OSError:
            try:
                self._cut_back()
            except OSError as exc:
                log.error("event log: could not cut back to %d bytes yet: %s",
                          self._durable_size, exc)
            raise
        self._durable_size += len(data)
        self._segment_lines += count
        if self._segment_lines >= self.segment_events:
            self._roll()

    def _cut_back(self) -> None:
        """Removes a partly written batch, so the file ends at its last durable line."""
        assert self._fd is not None
        self._torn_tail = True
        os.ftruncate(self._fd, self._durable_size)
        os.fsync(self._fd)
        self._torn_tail = False

    def _roll(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        last_seq = self._last_seq_on_disk()
        self._segment_lines = 0
        self._open_segment(self.folder / segment_name(last_seq + 1))

    def _last_seq_on_disk(self) -> int:
        for path in reversed(self.segments()):
            with open(path, "rb") as file:
                file.seek(max(0, os.path.getsize(path) - 65536))
                tail = file.read().splitlines()
            if tail:
                return decode_line(tail[-1]).seq
        return 0

    async def close(self) -> None:
        if self._writer_task is not None:
            while self._queue:
                await asyncio.sleep(0.001)
            self._writer_task.cancel()
            try:
                await self._writer_task
            except asyncio.CancelledError:
                pass
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._executor.shutdown(wait=True)


def _seq_at_most(line: bytes, seq: int) -> bool:
    """True when a checked line's event is at or below `seq`, found without decoding it."""
    if seq <= 0:
        return False
    return seq_of(verify_line(line)) <= seq


def _first_line_after(data: bytes, seq: int) -> int:
    """The offset of the first line above `seq`, by bisection (lines are in seq order).

    Lines a snapshot covers are skipped without reading them all. A bad line met on the way
    gives up (offset 0), so that the full scan reports it with its line number.
    """
    low, high = 0, len(data)
    while seq > 0 and low < high:
        start = data.rfind(b"\n", 0, (low + high) // 2) + 1
        end = data.find(b"\n", start)
        if end < 0:
            high = start
            continue
        try:
            at_most = _seq_at_most(data[start:end + 1], seq)
        except BadLine:
            return 0
        if at_most:
            low = end + 1
        else:
            high = start
    return low
