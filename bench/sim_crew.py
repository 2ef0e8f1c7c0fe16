"""A crew of simulated sailors: light asyncio clients that speak the sailor's real protocol.

Each simulated sailor leaves from its own address of 127.0.0.0/8 (the captain knows a sailor
by its address), registers once with POST /sailor_register, then calls POST /sailor_awake on
its schedule, every `interval_s`, over a kept-open connection as the real sailor does. The
captain is measured alone, by its pid: the simulators share the machine with it.
"""

import asyncio
import random
import resource
import time
from collections.abc import Callable, Mapping

import msgspec
import psutil

from bench.figures import Figure
from bench.http import Connection
from bench.local import LocalCrew, LogTail

LATE_AFTER_S = 1.0


Signer = Callable[[str, str, bytes], Mapping[str, str]]


def signer_for(crew: LocalCrew) -> Signer:
    """The one function that signs a simulated sailor's call, as a real sailor signs it:
    with the cluster key the captain keeps in its data folder (no headers when it has none).
    """
    key_file = crew.data / "cluster.key"
    try:
        from common.signing import ClusterKey
    except ImportError:
        return lambda method, path, body: {}
    if not key_file.exists():
        return lambda method, path, body: {}
    return ClusterKey(key_file.read_text().strip()).headers


def address_of(index: int) -> str:
    """The index-th sailor's address: 127.1.0.1, 127.1.0.2, ... 250 per third byte."""
    return f"127.1.{index // 250}.{index % 250 + 1}"


def raise_open_files_limit() -> int:
    """Raises this process's open-files limit to its hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Tally(msgspec.Struct):
    sent: int = 0
    answered: int = 0
    late: int = 0
    failed: int = 0
    worst_s: float = 0.0


class SimSailor:
    def __init__(self, crew: LocalCrew, index: int, sign: Signer) -> None:
        self.name = f"sim{index}"
        self.sign = sign
        self.address = address_of(index)
        self.connection = Connection("127.0.0.1", crew.port, local_host=self.address)

    async def post(self, path: str, body: object) -> tuple[int, bytes]:
        data = msgspec.json.encode(body)
        return await asyncio.wait_for(
            self.connection.request("POST", path, data, self.sign("POST", path, data)), 10)

    async def register(self) -> None:
        status, data = await self.post("/sailor_register", {
            "port": 9, "cpus": 4, "cores": [0, 1, 2, 3], "gpus": [], "ram": 8 * 2**30,
            "running": []})
        if status != 200:
            raise RuntimeError(f"{self.name} could not register: {data[:200]!r}")

    async def report_on_schedule(self, first_at: float, interval_s: float, until: float,
                                 tally: Tally) -> None:
        due = first_at
        while due < until:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tally.sent += 1
            try:
                status, data = await self.post("/sailor_awake", {"port": 9, "running": []})
                answer = msgspec.json.decode(data)
                ok = status == 200 and answer.get("registered", False)
            except (TimeoutError, OSError, ValueError, msgspec.DecodeError):
                ok = False
            delay_s = time.monotonic() - due
            tally.worst_s = max(tally.worst_s, delay_s)
            if not ok:
                tally.failed += 1
            else:
                tally.answered += 1
                if delay_s > LATE_AFTER_S:
                    tally.late += 1
            due += interval_s


async def _prereg_all(crew: LocalCrew, sailors: list[SimSailor]) -> None:
    async def prereg_share(share: list[SimSailor]) -> None:
        connection = Connection("127.0.0.1", crew.port)
        try:
            for sailor in share:
                body = msgspec.json.encode({"name": sailor.name, "ip": sailor.address,
                                            "services": ["sim"]})
                status, data = await connection.request("POST", "/prereg", body)
                if status != 201:
                    raise RuntimeError(f"prereg of {sailor.name} refused: {data[:200]!r}")
        finally:
            await connection.close()

    await asyncio.gather(*(prereg_share(sailors[i::8]) for i in range(8)))


async def _register_all(sailors: list[SimSailor]) -> None:
    limit = asyncio.Semaphore(64)

    async def register(sailor: SimSailor) -> None:
        async with limit:
            await sailor.register()

    await asyncio.gather(*(register(s) for s in sailors))


async def _run(crew: LocalCrew, count: int, interval_s: float, window_s: float
               ) -> list[Figure]:
    sign = signer_for(crew)
    sailors = [SimSailor(crew, i, sign) for i in range(count)]
    await _prereg_all(crew, sailors)
    await _register_all(sailors)
    tally = Tally()
    captain = psutil.Process(crew.captain_pid)
    tail = LogTail(crew)
    tail.read()
    warmup_s = interval_s
    start = time.monotonic()
    until = start + warmup_s + window_s
    tasks = [asyncio.create_task(s.report_on_schedule(
        start + random.uniform(0, interval_s), interval_s, until, tally)) for s in sailors]
    await asyncio.sleep(warmup_s)
    cpu_before = sum(captain.cpu_times()[:2])
    window_start = time.monotonic()
    await asyncio.gather(*tasks)
    window_real_s = time.monotonic() - window_start
    cpu_share = (sum(captain.cpu_times()[:2]) - cpu_before) / window_real_s
    rss_mb = captain.memory_info().rss / 2**20
    went_down = sum(1 for e in tail.read() if e["type"] == "SailorWentDown")
    for sailor in sailors:
        await sailor.connection.close()
    late = tally.late + tally.failed + went_down
    note = (f"{tally.sent} calls: {tally.late} late (> {LATE_AFTER_S:g} s), {tally.failed} "
            f"failed, {went_down} sailors marked down; worst {tally.worst_s * 1000:.0f} ms")
    return [
        Figure(name=f"crew[{count}].captain_cpu", value=cpu_share, unit="cores",
               note=f"over {window_real_s:.0f} s, a call per sailor every {interval_s:g} s"),
        Figure(name=f"crew[{count}].captain_rss", value=rss_mb, unit="MiB"),
        Figure(name=f"crew[{count}].late_reports", value=float(late), unit="calls", note=note),
    ]


def simulated_crew(crew: LocalCrew, count: int, interval_s: float, window_s: float
                   ) -> list[Figure]:
    return asyncio.run(_run(crew, count, interval_s, window_s))
