"""The sailor daemon: registers with its captain, runs the chores it is given, reports.

Every `report_interval_s` it checks its chores and sends every change the captain has not
acknowledged yet; a keeper's exit is also reported at once. It calls the captain's
`/sailor_awake` to say it is alive, and registers again whenever the captain asks.
"""

import asyncio
import logging
import signal
from pathlib import Path

import aiohttp
import msgspec

from common import messages as msg
from common.clock import CLOCK, Clock
from common.signing import ClusterKey
from sailor import cgroups
from sailor.launcher import Launcher, LaunchRefused
from sailor.registry import Entry, Registry
from sailor.resources import SavedResources

log = logging.getLogger(__name__)


class SailorSettings(msgspec.Struct, kw_only=True):
    data_dir: Path
    host: str = "0.0.0.0"
    port: int = 8751
    report_interval_s: float = 0.5
    awake_interval_s: float = 2.0
    register_interval_s: float = 3.0
    call_timeout_s: float = 5.0
    cancel_grace_s: float = 5.0


class Sailor:
    def __init__(self, settings: SailorSettings, resources: SavedResources,
                 clock: Clock = CLOCK) -> None:
        self.settings = settings
        self.resources = resources
        self.clock = clock
        self.captain_host = resources.captain.rsplit(":", 1)[0]
        self.cluster_key = (ClusterKey(resources.cluster_key, clock) if resources.cluster_key
                            else None)
        self.registry = Registry(settings.data_dir)
        self.launcher = Launcher(settings.data_dir, settings.cancel_grace_s)
        self.registered = False
        self.session: aiohttp.ClientSession | None = None
        self._report_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._dropped: dict[tuple[str, int], float] = {}
        self._starting: dict[str, asyncio.Future[msg.OrderAnswer]] = {}
        self._captain_reachable = True

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        leaf = cgroups.settle_daemon()
        if leaf is not None:
            log.info("sailor: moved to cgroup %s so chores get groups of their own", leaf)
        self.registry.load()
        log.info("sailor: %d chores in the registry from before", len(self.registry.entries))
        if self.cluster_key is None:
            log.warning("sailor: no cluster key (give it with 'sailor --cluster-key-file PATH'): "
                        "only a captain on this machine, running as root, can work with us")
        connector = aiohttp.TCPConnector(local_addr=(self.settings.host, 0)
                                         if self.settings.host not in ("0.0.0.0", "::") else None)
        self.session = aiohttp.ClientSession(connector=connector)
        self.launcher.prepare_standby()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._contact_loop()),
                       loop.create_task(self._report_loop())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.launcher.close()
        if self.session is not None:
            await self.session.close()

    async def call_captain(self, path: str, body: msgspec.Struct) -> tuple[int, bytes]:
        assert self.session is not None
        url = f"http://{self.resources.captain}{path}"
        timeout = aiohttp.ClientTimeout(total=self.settings.call_timeout_s)
        payload = msgspec.json.encode(body)
        headers = {"Content-Type": "application/json"}
        if self.cluster_key is not None:
            headers.update(self.cluster_key.headers("POST", path, payload))
        async with self.session.post(url, data=payload, timeout=timeout,
                                     headers=headers) as answer:
            return answer.status, await answer.read()

    # --- registering and staying in touch ---------------------------------------------------

    async def _contact_loop(self) -> None:
        while True:
            try:
                if self.registered:
                    await self._awake()
                else:
                    await self._register()
                if not self._captain_reachable:
                    log.info("sailor: the captain at %s answers again", self.resources.captain)
                self._captain_reachable = True
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                if self._captain_reachable:
                    log.warning("sailor: cannot reach the captain at %s: %s",
                                self.resources.captain, exc or type(exc).__name__)
                self._captain_reachable = False
            interval = (self.settings.awake_interval_s if self.registered
                        else self.settings.register_interval_s)
            await asyncio.sleep(interval)

    async def _register(self) -> None:
        body = msg.SailorRegisterRequest(
            port=self.settings.port, cpus=self.resources.cpus, cores=self.resources.cores,
            gpus=[msg.GpuSpec(g.type, g.vram) for g in self.resources.gpus],
            ram=self.resources.ram, running=list(self.registry.entries),
        )
        status, data = await self.call_captain("/sailor_register", body)
        if status != 200:
            log.warning("sailor: the captain refused to register us (%d): %s",
                        status, data[:300].decode(errors="replace"))
            return
        answer = msgspec.json.decode(data, type=msg.SailorAnswer)
        self.registered = True
        log.info("sailor: registered with the captain at %s", self.resources.captain)
        self._kill(answer.kill, "the captain does not know it runs here")

    async def _awake(self) -> None:
        body = msg.SailorAwakeRequest(port=self.settings.port, running=list(self.registry.entries))
        status, data = await self.call_captain("/sailor_awake", body)
        if status != 200:
            log.warning("sailor: awake refused (%d): %s", status, data[:300].decode())
            self.registered = False
            return
        answer = msgspec.json.decode(data, type=msg.SailorAnswer)
        if not answer.registered:
            log.info("sailor: the captain asks us to register again")
            self.registered = False
            await self._register()
            return
        self._kill(answer.kill, "the captain asked")

    # --- chores -----------------------------------------------------------------------------

    async def take_order(self, order: msg.ChoreOrder) -> msg.OrderAnswer:
        """Starts a chore once: an order repeated while (or after) it starts gets the same
        answer."""
        starting = self._starting.get(order.chore_id)
        if starting is None:
            starting = asyncio.ensure_future(self._start(order))
            self._starting[order.chore_id] = starting
            starting.add_done_callback(lambda _: self._starting.pop(order.chore_id, None))
        return await asyncio.shield(starting)

    async def _start(self, order: msg.ChoreOrder) -> msg.OrderAnswer:
        entry = self.registry.entries.get(order.chore_id)
        if entry is not None:
            # Already running here: this process now serves the latest placement.
            entry.assignment = max(entry.assignment, order.assignment)
            self.registry.save()
            return msg.OrderAnswer(accepted=True, pid=entry.pid, memory_limit=entry.memory_limit)
        if (order.chore_id, order.assignment) in self._dropped:
            return msg.OrderAnswer(accepted=False, reason="this chore was withdrawn")
        if not set(order.cores) <= set(self.resources.cores):
            return msg.OrderAnswer(accepted=False, reason=f"cores {order.cores} are not offered")
        if any(g >= len(self.resources.gpus) for g in order.gpu_ids):
            return msg.OrderAnswer(accepted=False, reason=f"no GPUs {order.gpu_ids} here")
        try:
            keeper, started = await self.launcher.launch(order)
        except (TimeoutError, LaunchRefused, OSError) as exc:
            log.warning("sailor: refused chore=%s: %s", order.chore_id, exc)
            return msg.OrderAnswer(accepted=False, reason=str(exc))
        entry = Entry(chore_id=order.chore_id, pid=started["pid"], keeper_pid=keeper.pid,
                      owner=order.owner, script=order.script, cores=order.cores,
                      gpu_ids=order.gpu_ids, memory_limit=started["memory_limit"],
                      started_at=self.clock.wall(), assignment=order.assignment)
        self.registry.entries[order.chore_id] = entry
        self.registry.save()
        log.info("sailor: chore=%s started pid=%d as uid=%d on cores %s gpus %s",
                 order.chore_id, entry.pid, order.owner, order.cores, order.gpu_ids)
        asyncio.get_running_loop().create_task(self._watch_keeper(order.chore_id, keeper))
        return msg.OrderAnswer(accepted=True, pid=entry.pid, memory_limit=entry.memory_limit)

    async def _watch_keeper(self, chore_id: str, keeper: asyncio.subprocess.Process) -> None:
        await keeper.wait()
        self._check_chores()
        self._report_now.set()

    def cancel(self, order: msg.CancelOrder) -> bool:
        entry = self.registry.entries.get(order.chore_id)
        if entry is None:
            if order.assignment is not None:
                self._dropped[(order.chore_id, order.assignment)] = self.clock.monotonic()
            return False
        if order.assignment is not None and order.assignment != entry.assignment:
            return True
        if entry.end is None:
            entry.cancel_reason = order.reason
            self.registry.save()
            self.launcher.cancel(order.chore_id, entry.keeper_pid)
            log.info("sailor: chore=%s cancel asked (%s)", order.chore_id, order.reason)
        return True

    def _kill(self, chore_ids: list[str], why: str) -> None:
        for chore_id in chore_ids:
            log.info("sailor: stopping chore=%s: %s", chore_id, why)
            self.cancel(msg.CancelOrder(chore_id=chore_id, reason=why))

    def _check_chores(self) -> None:
        """Turns every keeper that has ended into a final report."""
        changed = False
        for chore_id, entry in self.registry.entries.items():
            if entry.end is not None:
                continue
            ended = self.launcher.ended(chore_id)
            if ended is None:
                if self.launcher.keeper_alive(chore_id, entry.keeper_pid):
                    continue
                ended = self.launcher.ended(chore_id) or {"lost": True}
            entry.end = self._final_report(entry, ended)
            changed = True
            log.info("sailor: chore=%s ended %s (%s)", chore_id, entry.end.status,
                     entry.end.reason)
        if changed:
            self.registry.save()

    def _final_report(self, entry: Entry, ended: dict) -> msg.ChoreReport:
        report = msg.ChoreReport(chore_id=entry.chore_id, status="failed", pid=entry.pid,
                                 exit_code=ended.get("exit_code"), signal=ended.get("signal"),
                                 memory_limit=entry.memory_limit)
        if ended.get("lost"):
            report.reason = "the chore keeper vanished without recording an exit status"
        elif ended.get("start_error"):
            report.reason = f"could not start: {ended['start_error']}"
        elif ended.get("stopped_for") and _died_of_stop(report):
            report.status = "canceled"
            report.reason = ("exceeded time limit" if ended["stopped_for"] == "time limit"
                             else entry.cancel_reason or "canceled")
        elif ended.get("out_of_memory"):
            report.reason = "out of memory"
        elif report.exit_code == 0:
            report.status = "done"
        return report

    async def _report_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._report_now.wait(),
                                       timeout=self.settings.report_interval_s)
            except TimeoutError:
                pass
            self._report_now.clear()
            try:
                self._check_chores()
                await self._send_reports()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.debug("sailor: reports not delivered yet: %s", exc)
            except Exception:
                log.exception("sailor: the report round failed")
            self._forget_old_drops()

    async def _send_reports(self) -> None:
        reports = [self._report_of(e) for e in self.registry.entries.values()
                   if e.end is not None or not e.start_acked]
        if not reports or not self.registered:
            return
        status, data = await self.call_captain(
            "/sailor_report", msg.SailorReportRequest(reports=reports))
        if status != 200:
            log.warning("sailor: reports refused (%d): %s", status, data[:300].decode())
            return
        answer = msgspec.json.decode(data, type=msg.SailorReportAnswer)
        sent = {r.chore_id: r.status for r in reports}
        for chore_id in answer.acked:
            entry = self.registry.entries.get(chore_id)
            if entry is None:
                continue
            if entry.end is not None and sent.get(chore_id) != "running":
                del self.registry.entries[chore_id]
                self.launcher.forget(chore_id)
            else:
                entry.start_acked = True
        self.registry.save()
        self._kill(answer.kill, "the captain does not know it runs here")

    @staticmethod
    def _report_of(entry: Entry) -> msg.ChoreReport:
        if entry.end is not None:
            return entry.end
        return msg.ChoreReport(chore_id=entry.chore_id, status="running", pid=entry.pid,
                               memory_limit=entry.memory_limit)

    def _forget_old_drops(self) -> None:
        now = self.clock.monotonic()
        for key, at in list(self._dropped.items()):
            if now - at > 600:
                del self._dropped[key]


def _died_of_stop(report: msg.ChoreReport) -> bool:
    """Whether the chore ended by the keeper's stop signal rather than on its own.

    A stop that crosses a natural exit finds the chore already ended: its exit code stands.
    A shell reports a child killed by a signal as 128 + the signal, so those codes count
    as the stop too. A chore that catches SIGTERM and exits with a code of its own choosing
    is judged by that code.
    """
    stop_signals = (signal.SIGTERM, signal.SIGKILL)
    if report.signal is not None:
        return report.signal in stop_signals
    return report.exit_code in tuple(128 + s for s in stop_signals)
