"""A real crew for tests: a captain and sailors as separate processes on loopback addresses.

Every process a test starts is stopped at the end of the test, and every wait polls with a
deadline. The commands are those of the environment running the tests.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
CAPTAIN = str(BIN / "captain")
SAILOR = str(BIN / "sailor")
TEST_PASSWORD = "Captain-Test-1"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout_s: float = 20.0, what: str = "") -> Any:
    """Polls `predicate` until it returns something true; fails the test at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or predicate}")
        time.sleep(0.05)


def world_readable_folder(prefix: str) -> Path:
    """A scratch folder other users can reach (pytest's own tmp folders are root-only)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    folder.chmod(0o755)
    return folder


def ensure_user(name: str) -> int:
    """Creates (once) an ordinary user with a known password; returns its UID."""
    if subprocess.run(["id", "-u", name], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True)
    subprocess.run(["chpasswd"], input=f"{name}:{TEST_PASSWORD}", text=True, check=True)
    return int(subprocess.run(["id", "-u", name], capture_output=True, text=True,
                              check=True).stdout)


def kill_user_processes(name: str) -> None:
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)


class Daemon:
    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.argv = argv
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.argv, stdout=log, stderr=log,
                                        stdin=subprocess.DEVNULL)
        log.close()

    def kill(self, signum: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class Crew:
    """One captain (127.0.0.1) and the sailors a test adds, each at its own address."""

    def __init__(self, root: Path, captain_args: tuple[str, ...] = ()) -> None:
        self.root = root
        self.port = free_port()
        self.captain_data = root / "captain"
        self.captain_args = list(captain_args)
        self.captain = Daemon(self._captain_argv(), root / "captain.log")
        self.sailors: dict[str, Daemon] = {}
        self.sailor_ports: dict[str, int] = {}

    def _captain_argv(self) -> list[str]:
        return [CAPTAIN, "--serve", str(self.port), "--host", "127.0.0.1", "--data",
                str(self.captain_data), "--down-after", "3", "--order-timeout", "3",
                *self.captain_args]

    # --- daemons ----------------------------------------------------------------------------

    def start_captain(self) -> None:
        self.captain.start()
        wait_until(lambda: self.cli("--crew").returncode == 0, what="the captain to answer")

    def restart_captain(self) -> None:
        self.captain.kill(signal.SIGKILL)
        self.captain = Daemon(self._captain_argv(), self.root / "captain.log")
        self.start_captain()

    def add_sailor(self, name: str, address: str, *, cpus: int = 2, gpus: str = "none",
                   ram: str = "2G", services: str = "cpu", prereg: bool = True,
                   extra: tuple[str, ...] = ()) -> Daemon:
        data = self.root / name
        key_file = self.captain_data / "cluster.key"
        subprocess.run([SAILOR, "--data", str(data), "--captain", f"127.0.0.1:{self.port}",
                        "--cpus", str(cpus), "--gpus", gpus, "--ram", ram, "--yes",
                        "--cluster-key-file", str(key_file)],
                       check=True, capture_output=True, stdin=subprocess.DEVNULL)
        port = free_port(address)
        daemon = Daemon([SAILOR, "--serve", str(port), "--host", address, "--data", str(data),
                         "--awake-interval", "0.3", "--register-interval", "0.2",
                         "--cancel-grace", "1", *extra], self.root / f"{name}.log")
        daemon.start()
        self.sailors[name] = daemon
        self.sailor_ports[name] = port
        if prereg:
            self.cli_ok("--prereg", name, address, f"services={services}")
            wait_until(lambda: self.sailor_field(name, "status") in ("idle", "busy", "full"),
                       what=f"sailor {name} to be up")
        return daemon

    def stop(self) -> None:
        for daemon in self.sailors.values():
            daemon.kill(signal.SIGTERM)
        self.captain.kill(signal.SIGTERM)

    # --- the CLI ----------------------------------------------------------------------------

    def cli(self, *args: str, user: str | None = None, timeout_s: float = 30
            ) -> subprocess.CompletedProcess[str]:
        argv = [CAPTAIN, *args, "--port", str(self.port)]
        if user is not None:
            argv = ["runuser", "-u", user, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"})

    def cli_ok(self, *args: str, user: str | None = None) -> str:
        done = self.cli(*args, user=user)
        assert done.returncode == 0, f"captain {' '.join(args)} failed: {done.stderr}"
        return done.stdout

    def cli_json(self, *args: str, user: str | None = None) -> Any:
        return json.loads(self.cli_ok(*args, "--json", user=user))

    def submit(self, script: Path, *words: str, user: str | None = None) -> str:
        answer = self.cli_json("--chore", f"script={script}", *words, user=user)
        return answer["chore_id"]

    def chores(self) -> dict[str, Any]:
        return self.cli_json("--consult", "--all")

    def chore(self, chore_id: str) -> dict[str, Any]:
        return self.chores().get(chore_id, {})

    def wait_chore(self, chore_id: str, *statuses: str, timeout_s: float = 20) -> dict:
        return wait_until(lambda: (c := self.chore(chore_id)).get("status") in statuses and c,
                          timeout_s, f"chore {chore_id} to be {'/'.join(statuses)}")

    def sailor_field(self, name: str, field: str) -> Any:
        done = self.cli("--crew", "--json")
        if done.returncode != 0:
            return None
        return json.loads(done.stdout).get(name, {}).get(field)

    def events(self) -> list[dict[str, Any]]:
        found = []
        for segment in sorted((self.captain_data / "log").glob("events-*.jsonl")):
            for line in segment.read_text().splitlines():
                found.append(json.loads(line)["e"])
        return found


def write_script(folder: Path, name: str, body: str, owner: str | None = None) -> Path:
    path = folder / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)
    if owner is not None:
        shutil.chown(path, owner)
        shutil.chown(folder, owner)
    return path
