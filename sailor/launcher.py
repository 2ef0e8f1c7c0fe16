"""Starts a chore's keeper process, and reads back what the keeper recorded."""

import asyncio
import hashlib
import json
import os
import pwd
import shutil
import signal
import sys
from pathlib import Path

from common import messages as msg
from sailor import cgroups

BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


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

    def chore_folder(self, chore_id: str) -> Path:
        return self.data_dir / "chores" / chore_id

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
        spec_path = folder / "spec.json"
        spec_path.write_text(json.dumps(spec))
        log_file = open(folder / "keeper.log", "ab")
        try:
            keeper = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-m", "sailor.keeper", str(spec_path),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=log_file, start_new_session=True, env={"PATH": BASE_PATH},
            )
        finally:
            log_file.close()
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
        """Whether the keeper of this chore still runs (checking it is not a reused pid)."""
        try:
            cmdline = Path(f"/proc/{keeper_pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"sailor.keeper" in cmdline and f"/{chore_id}/".encode() in cmdline

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
