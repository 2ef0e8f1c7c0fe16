"""A whole crew on this one machine: a captain and one sailor, then an example chore.

    python -m cli.local_crew            start (or reuse) the local crew and run the example
    python -m cli.local_crew --stop     stop the local crew's daemons

Everything lives in one folder (default `data/local` of the install): the captain's and the
sailor's data, their logs, and the example chore's script and output. The daemons keep
running afterwards, so the crew can be used and watched; running the command again reuses
them and runs the example once more. Chores run as the user who runs this command, root
included: on this local crew the captain is started with --allow-root-chores, the admin's
own choice.
"""

import argparse
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from captain.settings import install_root

BIN = Path(sys.executable).parent
CAPTAIN = str(BIN / "captain")
SAILOR = str(BIN / "sailor")
EXAMPLE = """#!/bin/bash
# An example chore: says who and where it runs, with what it was granted.
echo "Hello from chore $CAPTAIN_CHORE_ID"
echo "running as $(id -un) (uid $(id -u)) on $(hostname)"
echo "cores granted: $(nproc)   GPUs granted: [${CUDA_VISIBLE_DEVICES}]"
echo "working in $(pwd)"
"""


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def start_daemon(folder: Path, name: str, argv: list[str]) -> None:
    pid_file = folder / f"{name}.pid"
    if alive(pid_file):
        print(f"{name}: already running (pid {pid_file.read_text().strip()})")
        return
    with open(folder / f"{name}.log", "ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    pid_file.write_text(str(process.pid))
    print(f"{name}: started (pid {process.pid}), log in {folder / f'{name}.log'}")


def captain(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CAPTAIN, *args, "--port", str(port), "--json"],
                          capture_output=True, text=True, timeout=30)


def wait_for(what: str, check, timeout_s: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    sys.exit(f"local crew: timed out waiting for {what}")


def choose_ports(folder: Path) -> tuple[int, int]:
    saved = folder / "ports.json"
    if saved.exists():
        ports = json.loads(saved.read_text())
        return ports["captain"], ports["sailor"]
    captain_port = next(p for p in range(8750, 8850) if port_free(p))
    sailor_port = next(p for p in range(captain_port + 1, 8900) if port_free(p))
    saved.write_text(json.dumps({"captain": captain_port, "sailor": sailor_port}))
    return captain_port, sailor_port


def up(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    captain_port, sailor_port = choose_ports(folder)
    start_daemon(folder, "captain", [CAPTAIN, "--serve", str(captain_port), "--host",
                                     "127.0.0.1", "--data", str(folder / "captain"),
                                     "--allow-root-chores"])
    wait_for("the captain", lambda: captain(captain_port, "--crew").returncode == 0)
    if not (folder / "sailor" / "resources.json").exists():
        subprocess.run([SAILOR, "--data", str(folder / "sailor"), "--captain",
                        f"127.0.0.1:{captain_port}", "--cluster-key-file",
                        str(folder / "captain" / "cluster.key"), "--yes"], check=True)
    start_daemon(folder, "sailor", [SAILOR, "--serve", str(sailor_port), "--host",
                                    "127.0.0.1", "--data", str(folder / "sailor"),
                                    "--register-interval", "0.5"])
    crew = json.loads(captain(captain_port, "--crew").stdout)
    if "local" not in crew:
        done = captain(captain_port, "--prereg", "local", "127.0.0.1", "services=local")
        if done.returncode != 0:
            sys.exit(f"local crew: prereg failed: {done.stdout or done.stderr}")
    wait_for("the sailor to register", lambda: json.loads(
        captain(captain_port, "--crew").stdout).get("local", {}).get("status") in (
        "idle", "busy", "full"))
    sailor = json.loads(captain(captain_port, "--crew").stdout)["local"]
    print(f"crew: sailor 'local' is {sailor['status']} with {sailor['cpus']} cores, "
          f"{len(sailor['gpus'])} GPUs, {sailor['ram'] / 2**30:.1f} GiB")
    return captain_port


def run_example(folder: Path, port: int) -> int:
    user = pwd.getpwuid(os.getuid())
    boat = folder / "boat" / user.pw_name
    boat.mkdir(parents=True, exist_ok=True)
    script = boat / "hello.sh"
    script.write_text(EXAMPLE)
    script.chmod(0o755)
    done = captain(port, "--chore", f"script={script}", "service=local", "cpus=1")
    if done.returncode != 0:
        sys.exit(f"local crew: the chore was refused: {done.stdout or done.stderr}")
    chore_id = json.loads(done.stdout)["chore_id"]
    print(f"chore {chore_id}: asked for as {user.pw_name}")

    def ended() -> dict | None:
        chores = json.loads(captain(port, "--consult").stdout)
        chore = chores.get(chore_id, {})
        return chore if chore.get("status") in ("done", "failed", "canceled") else None

    chore = wait_for(f"chore {chore_id} to end", ended)
    print(f"chore {chore_id}: {chore['status']} ({chore['reason']}) on sailor {chore['sailor']}")
    print(f"output: {chore['stdout']}")
    print("-" * 60)
    print(Path(chore["stdout"]).read_text(), end="")
    print("-" * 60)
    print(f"dashboard: http://127.0.0.1:{port}/")
    print(f"try:       {CAPTAIN} --consult --port {port}")
    print("stop:      python3 setup.py --local-crew-stop")
    return 0 if chore["status"] == "done" else 1


def stop(folder: Path) -> int:
    for name in ("sailor", "captain"):
        pid_file = folder / f"{name}.pid"
        pid = alive(pid_file)
        if pid is None:
            print(f"{name}: not running")
            continue
        os.kill(pid, signal.SIGTERM)
        wait_for(f"the {name} (pid {pid}) to stop", lambda f=pid_file: alive(f) is None)
        pid_file.unlink(missing_ok=True)
        print(f"{name}: stopped (pid {pid})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A captain and a sailor on this machine.")
    parser.add_argument("--folder", type=Path, default=install_root() / "data" / "local")
    parser.add_argument("--stop", action="store_true", help="stop the local crew")
    args = parser.parse_args(argv)
    folder = args.folder.resolve()
    if args.stop:
        return stop(folder)
    port = up(folder)
    return run_example(folder, port)


if __name__ == "__main__":
    sys.exit(main())
