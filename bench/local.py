"""A captain and real sailors on this machine, each sailor at its own loopback address.

Everything lives in one scratch folder that is removed at the end; every process started
here is stopped by its id, and every wait polls with a deadline.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from cli.client import call

BIN = Path(sys.executable).parent
CAPTAIN = str(BIN / "captain")
SAILOR = str(BIN / "sailor")
HELD_SERVICE = "held"
HELD_ADDRESS = "127.0.0.250"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def write_script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


class LocalCrew:
    """A captain on 127.0.0.1 and the sailors added to it, in `root`."""

    def __init__(self, root: Path, captain_args: tuple[str, ...] = ()) -> None:
        self.root = root
        self.port = free_port()
        self.data = root / "captain"
        self.captain_args = captain_args
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def captain_pid(self) -> int:
        return self.processes["captain"].pid

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with open(self.root / f"{name}.log", "ab") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.processes[name] = process
        return process

    def start_captain(self) -> None:
        self._spawn("captain", [
            CAPTAIN, "--serve", str(self.port), "--host", "127.0.0.1", "--data",
            str(self.data), "--allow-root-chores", *self.captain_args])
        wait_until(self._answers, 30, "the captain to answer")

    def _answers(self) -> bool:
        if self.processes["captain"].poll() is not None:
            raise RuntimeError(f"the captain exited; see {self.root / 'captain.log'}")
        try:
            return self.call("GET", "/health").ok
        except Exception:
            return False

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return call(("127.0.0.1", self.port), method, path, body, timeout_s=30)

    def prereg(self, name: str, ip: str, services: str) -> None:
        answer = self.call("POST", "/prereg", {"name": name, "ip": ip,
                                               "services": services.split(",")})
        if not answer.ok:
            raise RuntimeError(f"prereg of {name} refused: {answer.error()}")

    def hold_service(self) -> None:
        """A service whose only sailor never comes: chores asked of it stay pending."""
        self.prereg("held", HELD_ADDRESS, HELD_SERVICE)

    def add_sailor(self, name: str, address: str, cpus: int = 2, services: str = "cpu") -> None:
        data = self.root / name
        key_file = self.data / "cluster.key"
        key = ["--cluster-key", key_file.read_text().strip()] if key_file.exists() else []
        subprocess.run([SAILOR, "--data", str(data), "--captain", f"127.0.0.1:{self.port}",
                        "--cpus", str(cpus), "--gpus", "none", "--ram", "2G", *key, "--yes"],
                       check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
        port = free_port(address)
        self._spawn(name, [SAILOR, "--serve", str(port), "--host", address, "--data",
                           str(data), "--register-interval", "0.2"])
        self.prereg(name, address, services)
        wait_until(lambda: self.crew().get(name, {}).get("status") == "idle", 30,
                   f"sailor {name} to be idle")

    def crew(self) -> dict[str, Any]:
        answer = self.call("GET", "/crew")
        return answer.json() if answer.ok else {}

    def stop(self) -> None:
        for name, process in reversed(list(self.processes.items())):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            del self.processes[name]

    def events(self) -> Iterator[dict[str, Any]]:
        """Every event of the captain's log so far, as plain dicts."""
        for segment in sorted((self.data / "log").glob("events-*.jsonl")):
            for raw in segment.read_bytes().splitlines():
                try:
                    yield msgspec.json.decode(raw)["e"]
                except msgspec.DecodeError:
                    continue


class Scratch:
    """A scratch folder other users can reach, removed on exit."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="captain-bench-", dir="/tmp"))
        self.path.chmod(0o755)
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def crew_in(root: Path, name: str, captain_args: tuple[str, ...] = ()) -> LocalCrew:
    folder = root / name
    folder.mkdir()
    os.chmod(folder, 0o755)
    return LocalCrew(folder, captain_args)


class LogTail:
    """Reads the events appended to a captain's log since the last read."""

    def __init__(self, crew: LocalCrew) -> None:
        self.folder = crew.data / "log"
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, bytes] = {}

    def read(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for segment in sorted(self.folder.glob("events-*.jsonl")):
            with open(segment, "rb") as file:
                file.seek(self._offsets.get(segment, 0))
                data = self._partial.pop(segment, b"") + file.read()
                self._offsets[segment] = file.tell()
            lines = data.split(b"\n")
            if lines[-1]:
                self._partial[segment] = lines[-1]
            for raw in lines[:-1]:
                found.append(msgspec.json.decode(raw)["e"])
        return found
