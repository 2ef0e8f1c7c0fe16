"""The crew, chores and users views written as JSON files for people and tools to read.

Files are replaced atomically (temp file, fsync, rename), at most once per interval, by a
background task: never on the path that answers requests. Building the views takes the event
loop (the state must not change under them), so with a large state the interval grows until
they take at most a twentieth of the loop's time.
"""

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import msgspec

from projections.state import State
from projections.views import chores_view, crew_view, users_view

log = logging.getLogger(__name__)

# The share of the event loop's time that building the views may take, at most.
RENDER_SHARE = 0.05


class ViewSource(Protocol):
    @property
    def state(self) -> State: ...

    last_seen_wall: dict[str, float]


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    # A name of its own per writer thread: the last write at shutdown may overlap a periodic one.
    temp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


class ViewFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._dirty = asyncio.Event()

    def mark_dirty(self) -> None:
        self._dirty.set()

    def render(self, source: ViewSource) -> dict[str, bytes]:
        views: dict[str, Any] = {
            "crew.json": crew_view(source.state, source.last_seen_wall),
            "chores.json": chores_view(source.state),
            "users.json": users_view(source.state),
        }
        return {name: msgspec.json.format(msgspec.json.encode(v)) for name, v in views.items()}

    def _write(self, files: dict[str, bytes]) -> None:
        for name, data in files.items():
            write_atomically(self.folder / name, data)

    def write_now(self, source: ViewSource) -> None:
        try:
            self._write(self.render(source))
        except OSError as exc:
            log.warning("views: could not write the view files: %s", exc)

    async def run(self, source: ViewSource, interval_s: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            started_s = time.perf_counter()
            files = self.render(source)
            render_s = time.perf_counter() - started_s
            try:
                await loop.run_in_executor(None, self._write, files)
            except OSError as exc:
                log.warning("views: could not write the view files: %s", exc)
            await asyncio.sleep(max(interval_s, render_s / RENDER_SHARE))
