"""Starting chores and sailors: what fails says why, in one line, where its user looks.

A chore that cannot start (its output cannot be written, its script cannot be run) ends
failed with the reason in the captain's views. A sailor that cannot serve (cores it does not
have, a port in use, an address of another machine, a data folder another sailor holds)
refuses at once with one line and a non-zero exit.
"""

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from crew import SAILOR, Crew, Daemon, free_port, wait_until, write_script

NOWHERE = "127.0.0.1:9"  # a captain address nothing answers: these sailors need none


def set_up_sailor(data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([SAILOR, "--data", str(data), "--captain", NOWHERE, "--cpus", "1",
                           "--gpus", "none", "--ram", "1G", "--yes", *extra],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done


def serve(data: Path, host: str, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SAILOR, "--serve", str(port), "--host", host, "--data", str(data)],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def assert_one_line_refusal(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]


# --- chores that cannot start ---------------------------------------------------------------


def test_a_chore_that_cannot_write_its_output_says_why(crew: Crew, scratch: Path,
                                                       test_user: str):
    crew.add_sailor("s1", "127.0.0.2")
    folder = scratch / "root-only"
    folder.mkdir(mode=0o755)
    script = write_script(folder, "run.sh", "exit 0\n")

    chore_id = crew.submit(script, "service=cpu", user=test_user)
    chore = crew.wait_chore(chore_id, "done", "failed")

    assert chore["status"] == "failed" and chore["exit_code"] == 126, chore
    assert chore["reason"] == (f"could not start: cannot write {folder}/chore-{chore_id}.out: "
                               "Permission denied")


def test_a_script_its_user_may_not_run_says_why(crew: Crew, boat: Path, test_user: str):
    crew.add_sailor("s1", "127.0.0.2")
    script = write_script(boat, "root-only.sh", "exit 0\n")
    script.chmod(0o700)

    chore_id = crew.submit(script, "service=cpu", user=test_user)
    chore = crew.wait_chore(chore_id, "done", "failed")

    assert chore["status"] == "failed" and chore["exit_code"] == 126, chore
    assert chore["reason"] == f"could not start: cannot run {script}: Permission denied"


# --- keepers on standby --------------------------------------------------------------------


def standby_keepers(chores_folder: Path, parent: int | None = None) -> list[int]:
    """Keepers waiting for a chore (started with the chores folder, not a spec, to run), and
    the chore processes they forked ahead of time; with `parent`, only its children."""
    found = subprocess.run(["pgrep", *(["-P", str(parent)] if parent else []), "-f",
                            f"sailor.keeper {chores_folder}$"], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def test_a_keeper_waits_on_standby_and_ends_with_its_sailor(crew: Crew, boat: Path,
                                                           test_user: str):
    daemon = crew.add_sailor("s1", "127.0.0.2")
    chores_folder = crew.root / "s1" / "chores"
    assert daemon.process is not None
    sailor_pid = daemon.process.pid
    first = wait_until(lambda: standby_keepers(chores_folder, sailor_pid),
                       what="a keeper on standby")
    assert len(first) == 1
    # It has forked the chore's process already, which waits for its orders.
    wait_until(lambda: standby_keepers(chores_folder, first[0]), what="the waiting child")

    # The chore goes to the keeper that was waiting, and another one takes its place.
    script = write_script(boat, "run.sh", "echo ran\n", owner=test_user)
    chore_id = crew.submit(script, "service=cpu", user=test_user)
    assert crew.wait_chore(chore_id, "done", "failed")["status"] == "done"
    second = wait_until(lambda: standby_keepers(chores_folder, sailor_pid),
                        what="the next standby")
    assert len(second) == 1 and second != first
    wait_until(lambda: not Path(f"/proc/{first[0]}").exists(), what="the first keeper to end")

    # Killed, the sailor leaves no keeper (nor forked chore process) waiting for an order
    # that cannot come, and no control group made ahead of time.
    daemon.kill()
    wait_until(lambda: not standby_keepers(chores_folder), what="the standby keeper to end")
    assert not list(Path("/sys/fs/cgroup").rglob(f"standby-{second[0]}"))


# --- the first run --------------------------------------------------------------------------


def test_a_sailor_set_up_without_the_key_is_warned(scratch: Path):
    done = set_up_sailor(scratch / "keyless")
    assert "no cluster key" in done.stderr
    assert "captain on this same machine, running as root" in done.stderr
    assert "captain --show-key" in done.stderr and "--cluster-key-file PATH" in done.stderr

    key_file = scratch / "cluster.key"
    key_file.write_text("k" * 43)
    key_file.chmod(0o600)
    done = set_up_sailor(scratch / "keyed", "--cluster-key-file", str(key_file))
    assert "no cluster key" not in done.stderr


def test_a_data_folder_that_cannot_be_made_is_one_line(scratch: Path):
    def set_up(data: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SAILOR, "--data", str(data), "--captain", NOWHERE, "--yes"],
                              capture_output=True, text=True, timeout=30)

    in_proc = Path("/proc/captain-no-such/sailor")
    assert_one_line_refusal(set_up(in_proc), f"cannot save the answers in {in_proc}")

    (scratch / "a-file").touch()
    assert_one_line_refusal(set_up(scratch / "a-file" / "sailor"), "Not a directory")


# --- sailors that cannot serve --------------------------------------------------------------


@pytest.mark.parametrize("cpus, cores, words", [
    (1, "beyond", ("offers cores", "not let the sailor use")),
    (2, "first", ("offers cpus=2",)),
])
def test_serve_refuses_cores_the_machine_does_not_have(scratch: Path, cpus: int, cores: str,
                                                       words: tuple[str, ...]):
    data = scratch / "sailor"
    set_up_sailor(data)
    saved = json.loads((data / "resources.json").read_text())
    allowed = sorted(os.sched_getaffinity(0))
    saved["cpus"] = cpus
    saved["cores"] = [allowed[-1] + 1000] if cores == "beyond" else allowed[:1]
    (data / "resources.json").write_text(json.dumps(saved))

    done = serve(data, "127.0.0.5", free_port("127.0.0.5"))

    assert_one_line_refusal(done, str(data / "resources.json"), *words)


def test_serve_refuses_a_port_in_use_and_a_foreign_address(scratch: Path):
    data = scratch / "sailor"
    set_up_sailor(data)
    with socket.create_server(("127.0.0.5", 0)) as taken:
        port = taken.getsockname()[1]
        done = serve(data, "127.0.0.5", port)
    assert_one_line_refusal(done, f"127.0.0.5:{port}", "already in use")

    done = serve(data, "10.99.99.99", 8751)
    assert_one_line_refusal(done, "10.99.99.99 is not an address of this machine")


def start_sailor(data: Path, host: str, log: Path) -> tuple[Daemon, str]:
    """Starts a sailor daemon; returns it once it holds its data folder, and its pid."""
    daemon = Daemon([SAILOR, "--serve", str(free_port(host)), "--host", host, "--data",
                     str(data)], log)
    daemon.start()
    assert daemon.process is not None
    pid = str(daemon.process.pid)
    lock = data / "sailor.lock"
    wait_until(lambda: lock.exists() and lock.read_text().strip() == pid,
               what=f"the sailor {pid} to hold its data folder")
    return daemon, pid


def test_a_second_sailor_on_one_data_folder_refuses(scratch: Path):
    data = scratch / "sailor"
    set_up_sailor(data)
    first, pid = start_sailor(data, "127.0.0.5", scratch / "first.log")
    try:
        done = serve(data, "127.0.0.6", free_port("127.0.0.6"))
        assert_one_line_refusal(done, f"another sailor already serves from {data} (pid {pid})")
        assert first.process is not None and first.process.poll() is None
    finally:
        first.kill()

    # The lock goes with its process, even one killed: the next sailor starts.
    again, _ = start_sailor(data, "127.0.0.6", scratch / "again.log")
    again.kill()
