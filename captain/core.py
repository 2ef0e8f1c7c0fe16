"""The captain daemon's parts put together: state, dispatcher, housekeeping and view files."""

import asyncio
import logging

import aiohttp
import msgspec

from captain import cluster_key
from captain.dispatcher import Dispatcher
from captain.housekeeping import Housekeeping
from captain.recorder import Recorder
from captain.settings import CaptainSettings
from common.clock import CLOCK, Clock
from common.signing import ClusterKey
from eventlog import events as ev
from projections.files import ViewFiles
from projections.state import State

log = logging.getLogger(__name__)

_WAKES_DISPATCHER = (
    ev.ChoreRequested, ev.ChoreRefused, ev.ChoreEnded, ev.SailorRegistered,
    ev.SailorPreregistered, ev.SailorUpdated, ev.SailorWentDown,
)


class Captain:
    def __init__(self, settings: CaptainSettings, clock: Clock = CLOCK) -> None:
        self.settings = settings
        self.clock = clock
        self.recorder = Recorder(settings.log_dir, clock,
                                 snapshot_every=settings.snapshot_every)
        self.last_seen_mono: dict[str, float] = {}
        self.last_seen_wall: dict[str, float] = {}
        self.dispatcher = Dispatcher(self)
        self.housekeeping = Housekeeping(self)
        self.view_files = ViewFiles(settings.data_dir)
        self.session: aiohttp.ClientSession | None = None
        self.cluster_key: ClusterKey | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def state(self) -> State:
        return self.recorder.state

    async def start(self) -> None:
        key = cluster_key.load_or_create(self.settings.data_dir)
        self.cluster_key = ClusterKey(key, self.clock)
        started = self.clock.monotonic()
        count = await self.recorder.open()
        log.info("captain: replayed %d events in %.3f s; %d sailors, %d chores",
                 count, self.clock.monotonic() - started, len(self.state.sailors),
                 len(self.state.chores))
        self._give_sailors_a_grace_period()
        self.housekeeping.note_loaded_chores()
        connector = aiohttp.TCPConnector(local_addr=(self.settings.host, 0), limit=0)
        self.session = aiohttp.ClientSession(connector=connector)
        self.recorder.listeners.append(self._on_event)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.dispatcher.run()),
            loop.create_task(self.housekeeping.run()),
            loop.create_task(self.view_files.run(self, self.settings.views_interval_s)),
        ]
        self.view_files.mark_dirty()
        self.dispatcher.wake()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.dispatcher.stop()
        if self.session is not None:
            await self.session.close()
        await self.recorder.close()
        self.view_files.write_now(self)

    def _give_sailors_a_grace_period(self) -> None:
        """After a restart, sailors that were up get a full liveness period to call again."""
        now_mono, now_wall = self.clock.monotonic(), self.clock.wall()
        for name, sailor in self.state.sailors.items():
            if sailor.up:
                self.last_seen_mono[name] = now_mono
                self.last_seen_wall.setdefault(name, now_wall)

    def _on_event(self, event: ev.AnyEvent) -> None:
        self.view_files.mark_dirty()
        if isinstance(event, ev.ChoreEnded):
            self.housekeeping.note_ended(event.chore_id)
        if isinstance(event, ev.ChoreStarted):
            self.housekeeping.run_clock.note_started(event.chore_id)
        if isinstance(event, ev.SailorRegistered):
            self.dispatcher.sailor_woke(event.name)
        if isinstance(event, _WAKES_DISPATCHER):
            self.dispatcher.wake()

    def saw_sailor(self, name: str) -> None:
        self.last_seen_mono[name] = self.clock.monotonic()
        self.last_seen_wall[name] = self.clock.wall()

    async def call_sailor(self, name: str, path: str, body: msgspec.Struct,
                          timeout_s: float) -> bytes:
        """POSTs a body to a sailor's endpoint; raises on no answer or a non-2xx status."""
        sailor = self.state.sailors[name]
        return await self.call_address((sailor.ip, sailor.port), path, body, timeout_s)

    async def call_address(self, address: tuple[str, int], path: str, body: msgspec.Struct,
                           timeout_s: float) -> bytes:
        """Like `call_sailor`, for a sailor known by address (one just taken off the list)."""
        assert self.session is not None
        url = f"http://{address[0]}:{address[1]}{path}"
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        payload = msgspec.json.encode(body)
        assert self.cluster_key is not None
        headers = {"Content-Type": "application/json",
                   **self.cluster_key.headers("POST", path, payload)}
        async with self.session.post(url, data=payload, timeout=timeout,
                                     headers=headers) as answer:
            data = await answer.read()
            if answer.status >= 300:
                raise aiohttp.ClientResponseError(
                    answer.request_info, (), status=answer.status, message=data[:200].decode()
                )
            return data
