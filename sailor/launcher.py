"""Starts a chore's keeper process, and reads back what the keeper recorded.

One keeper is always started ahead of time, on standby, so that an order is handed to a
keeper whose interpreter is up and whose chore process is already forked and in its control
groups (those starts were most of the time from order to chore start); the next one is
started as soon as it is taken.
"""

import asyncio
import hashlib
import json
import logging
import os
import pwd
import shutil
import signal
import sys
from pathlib import Path

from common import messages as msg
from sailor import cgroups
from sailor.keeper import process_start_ticks

BASE_PATH = "/usr/local/bin:/usr/bin:/bin"

log = logging.getLogger(__name__)


class LaunchRefused(Exception):
    """The sailor will not run this chore (unknown user, cores it does not have...)."""


def chore_env(user: pwd.struct_passwd, order: msg.ChoreOrder) -> dict[str, str]:
    """The chore's environment, built from scratch: nothing of the sailor's leaks in."""
    return {
        "HOME": user.pw_dir,
        "USER": user.pw_name,
        "LOGNAME": user.pw_name,
        "SHELL": user.pw_shell or "/bin/sh",
        "PATH": BASE_PATH,
        "LANG": "C.UTF-8",
        "CAPTAIN_CHORE_ID": order.chore_id,
        "CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in order.gpu_ids),
    }


def output_paths(script: str, chore_id: str) -> tuple[str, str]:
    folder = os.path.dirname(script)
    return (os.path.join(folder, f"chore-{chore_id}.out"),
            os.path.join(folder, f"chore-{chore_id}.err"))


class Launcher:
    def __init__(self, data_dir: Path, grace_s: float) -> None:
        self.data_dir = data_dir
        self.grace_s = grace_s
        self._tag = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:8]
        self.chores_folder = data_dir / "chores"
        self._standby: asyncio.subprocess.Process | None = None
        self._standby_starting: asyncio.Task[None] | None = None

    def chore_folder(self, chore_id: str) -> Path:
        return self.chores_folder / chore_id

    # --- keepers on standby -----------------------------------------------------------------

    async def _start_keeper(self) -> asyncio.subprocess.Process:
        """A keeper waiting for a chore id on its standard input."""
        self.chores_folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # What a keeper says before it is given a chore (a broken install, say) goes here.
        log_file = open(self.data_dir / "keepers.log", "ab")
        try:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-m", "sailor.keeper", str(self.chores_folder),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=log_file, start_new_session=True, env={"PATH": BASE_PATH},
            )
        finally:
            log_file.close()

    def prepare_standby(self) -> None:
        """Starts the next standby keeper in the background, unless one is ready or coming."""
        if self._standby is not None or self._standby_starting is not None:
            return
        self._standby_starting = asyncio.get_running_loop().create_task(self._fill_standby())

    async def _fill_standby(self) -> None:
        try:
            self._standby = await self._start_keeper()
        except OSError as exc:
            log.warning("sailor: could not start a keeper on standby: %s", exc)
        finally:
            self._standby_starting = None

    def _take_standby(self) -> asyncio.subprocess.Process | None:
        keeper, self._standby = self._standby, None
        self.prepare_standby()
        if keeper is None or keeper.returncode is not None:
            return None
        return keeper

    async def close(self) -> None:
        """Lets the standby keeper go: with its input closed, it ends."""
        if self._standby_starting is not None:
            self._standby_starting.cancel()
            await asyncio.gather(self._standby_starting, return_exceptions=True)
        keeper, self._standby = self._standby, None
        if keeper is not None and keeper.stdin is not None:
            keeper.stdin.close()
            await keeper.wait()

    async def _hand_over(self, chore_id: str) -> asyncio.subprocess.Process:
        """Names the chore to the standby keeper, or to a new one if none is ready."""
        keeper = self._take_standby()
        for _ in range(2):
            if keeper is None:
                keeper = await self._start_keeper()
            assert keeper.stdin is not None
            try:
                keeper.stdin.write(f"{chore_id}\n".encode())
                await keeper.stdin.drain()
                keeper.stdin.close()
                return keeper
            except (BrokenPipeError, ConnectionResetError):
                keeper = None  # it died on standby: take a new one
        raise LaunchRefused("the chore keeper ended before it was given the chore")

    # --- chores -----------------------------------------------------------------------------

    def spec_for(self, order: msg.ChoreOrder) -> dict:
        try:
            user = pwd.getpwuid(order.owner)
        except KeyError:
            raise LaunchRefused(f"unknown user uid {order.owner} on this sailor") from None
        stdout, stderr = output_paths(order.script, order.chore_id)
        return {
            "chore_id": order.chore_id,
            "script": order.script,
            "uid": user.pw_uid,
            "gid": user.pw_gid,
            "groups": os.getgrouplist(user.pw_name, user.pw_gid),
            "cores": order.cores,
            "gpu_ids": order.gpu_ids,
            "ram": order.ram,
            "max_time_s": order.max_time_s,
            "grace_s": self.grace_s,
            "stdout": stdout,
            "stderr": stderr,
            "env": chore_env(user, order),
            "cgroups": {k: str(v) for k, v in
                        cgroups.chore_groups(f"{self._tag}-{order.chore_id}").items()},
        }

    async def launch(self, order: msg.ChoreOrder) -> tuple[asyncio.subprocess.Process, dict]:
        """Starts the keeper; returns it and what it said once the chore was forked."""
        spec = self.spec_for(order)
        folder = self.chore_folder(order.chore_id)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, mode=0o700)
        (folder / "spec.json").write_text(json.dumps(spec))
        keeper = await self._hand_over(order.chore_id)
        assert keeper.stdout is not None
        line = await asyncio.wait_for(keeper.stdout.readline(), timeout=10)
        if not line:
            await keeper.wait()
            raise LaunchRefused(f"the chore keeper failed to start (see {folder}/keeper.log)")
        return keeper, json.loads(line)

    def ended(self, chore_id: str) -> dict | None:
        path = self.chore_folder(chore_id) / "ended.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def keeper_alive(self, chore_id: str, keeper_pid: int) -> bool:
        """Whether the keeper of this chore still runs, checking that its pid was not reused:
        the keeper recorded when it started (a pid and a start time name one process)."""
        try:
            cmdline = Path(f"/proc/{keeper_pid}/cmdline").read_bytes()
        except OSError:
            return False
        if b"sailor.keeper" not in cmdline:
            return False
        try:
            started = json.loads((self.chore_folder(chore_id) / "started.json").read_text())
        except (OSError, ValueError):
            started = {}
        ticks = started.get("keeper_start_ticks")
        if ticks is None:
            # A keeper started before start times were recorded named its chore's spec.
            return f"/{chore_id}/spec.json".encode() in cmdline
        return started.get("keeper_pid") == keeper_pid and ticks == process_start_ticks(keeper_pid)

    def cancel(self, chore_id: str, keeper_pid: int) -> bool:
        if not self.keeper_alive(chore_id, keeper_pid):
            return False
        try:
            os.kill(keeper_pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    def forget(self, chore_id: str) -> None:
        shutil.rmtree(self.chore_folder(chore_id), ignore_errors=True)
