"""A chore end to end: a real captain, real sailors at their own addresses, a real user."""

import json
import os
import pwd
import signal
import subprocess
import time
from pathlib import Path

import pytest

from crew import Crew, wait_until, write_script

PROBE = """\
out="$(dirname "$0")/probe-$CAPTAIN_CHORE_ID.txt"
echo "uid=$(id -u)" >"$out"
echo "gid=$(id -g)" >>"$out"
cores=$(python3 -c 'import os; print(",".join(map(str, sorted(os.sched_getaffinity(0)))))')
echo "cores=$cores" >>"$out"
echo "gpus=[${CUDA_VISIBLE_DEVICES-unset}]" >>"$out"
echo "home=$HOME user=$USER pwd=$(pwd)" >>"$out"
"""


def probe_of(boat: Path, chore_id: str) -> dict[str, str]:
    text = (boat / f"probe-{chore_id}.txt").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line.split()[0])


def test_chore_runs_as_the_user_on_its_granted_core(crew: Crew, boat: Path, test_user: str):
    crew.add_sailor("s1", "127.0.0.2")
    crew.add_sailor("s2", "127.0.0.3")
    script = write_script(boat, "probe.sh", PROBE, owner=test_user)

    chore_id = crew.submit(script, "service=cpu", "cpus=1", user=test_user)
    chore = crew.wait_chore(chore_id, "done", "failed")

    user = pwd.getpwnam(test_user)
    assert chore["status"] == "done" and chore["exit_code"] == 0, chore
    assert chore["owner"] == user.pw_uid
    probe = probe_of(boat, chore_id)
    assert probe["uid"] == str(user.pw_uid)
    assert probe["gid"] == str(user.pw_gid)
    assert probe["cores"] == ",".join(map(str, chore["cores"]))
    assert len(chore["cores"]) == 1
    assert probe["gpus"] == "[]"
    assert f"home={user.pw_dir} user={test_user} pwd={boat}" in (
        boat / f"probe-{chore_id}.txt").read_text()
    out = Path(chore["stdout"])
    assert out.exists() and out.stat().st_uid == user.pw_uid


def test_registration_waits_for_prereg_and_strangers_are_refused(crew: Crew):
    daemon = crew.add_sailor("s1", "127.0.0.2", prereg=False)
    wait_until(lambda: "refused to register" in daemon.log(), what="a refused registration")
    assert crew.cli_json("--crew") == {}

    crew.cli_ok("--prereg", "s1", "127.0.0.2", "services=cpu")
    wait_until(lambda: crew.sailor_field("s1", "status") == "idle", what="s1 idle")
    sailor = crew.cli_json("--crew")["s1"]
    assert sailor["cpus"] == 2 and sailor["ram"] == 2 * 2**30 and sailor["gpus"] == []

    before = len(crew.events())
    stranger = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface", "127.0.0.9",
         "-X", "POST", "-H", "Content-Type: application/json", "-d",
         '{"port": 9, "cpus": 1, "cores": [0], "ram": 1}',
         f"http://127.0.0.1:{crew.port}/sailor_register"],
        capture_output=True, text=True, timeout=20)
    assert stranger.stdout == "403"
    assert len(crew.events()) == before


def test_a_chore_that_fits_nowhere_waits_then_starts(crew: Crew, boat: Path, test_user: str):
    crew.add_sailor("s1", "127.0.0.2", cpus=1)
    long = write_script(boat, "long.sh", "sleep 30\n", owner=test_user)
    quick = write_script(boat, "quick.sh", "exit 0\n", owner=test_user)

    first = crew.submit(long, "service=cpu", user=test_user)
    crew.wait_chore(first, "running")
    second = crew.submit(quick, "service=cpu", user=test_user)
    waiting = crew.chore(second)
    assert waiting["status"] == "pending"
    assert waiting["reason"] == "no available sailor"
    assert crew.sailor_field("s1", "status") == "full"

    crew.cli_ok("--cancel", first, user=test_user)
    crew.wait_chore(second, "done")
    assert crew.chore(first)["status"] == "canceled"


def test_cancel_pending_and_running_leaves_no_process(crew: Crew, boat: Path, test_user: str):
    crew.add_sailor("s1", "127.0.0.2", cpus=1)
    escaper = write_script(boat, "escape.sh", (
        "setsid sleep 300 </dev/null >/dev/null 2>&1 &\n"
        "sleep 300 &\n"
        "echo started > \"$(dirname \"$0\")/escaped-$CAPTAIN_CHORE_ID\"\n"
        "wait\n"), owner=test_user)
    running = crew.submit(escaper, "service=cpu", user=test_user)
    crew.wait_chore(running, "running")
    wait_until(lambda: (boat / f"escaped-{running}").exists(), what="the script's children")
    pending = crew.submit(escaper, "service=cpu", user=test_user)
    assert crew.chore(pending)["status"] == "pending"

    crew.cli_ok("--cancel", pending, user=test_user)
    assert crew.chore(pending)["status"] == "canceled"
    assert crew.chore(pending)["reason"] == "canceled by user"

    crew.cli_ok("--cancel", running, user=test_user)
    ended = crew.wait_chore(running, "canceled", "failed", "done")
    assert ended["status"] == "canceled" and ended["reason"] == "canceled by user"

    def no_sleep_left() -> bool:
        found = subprocess.run(["pgrep", "-u", test_user, "sleep"], capture_output=True)
        return found.returncode != 0
    wait_until(no_sleep_left, 10, "every process of the chore to be gone")
    assert crew.sailor_field("s1", "cpus_in_use") == 0
    assert crew.sailor_field("s1", "status") == "idle"


def test_captain_killed_keeps_its_chores(crew: Crew, boat: Path, test_user: str):
    crew.add_sailor("s1", "127.0.0.2", cpus=1)
    work = write_script(boat, "work.sh", "sleep 2\n", owner=test_user)
    running = crew.submit(work, "service=cpu", user=test_user)
    crew.wait_chore(running, "running")
    pending = crew.submit(work, "service=cpu", user=test_user)
    before = crew.chores()

    crew.restart_captain()
    after = crew.chores()
    assert set(after) == set(before)
    assert after[running]["status"] in ("running", "done")
    assert after[pending]["status"] in ("pending", "assigned", "running", "done")
    crew.wait_chore(running, "done")
    crew.wait_chore(pending, "done")


@pytest.mark.parametrize("words, field", [
    ((), "script"),
    (("script=/nonexistent/run.sh", "service=cpu"), "script"),
    (("service=nosuch",), "service"),
    (("sailor=nosuch",), "sailor"),
    (("service=cpu", "cpus=0"), "cpus"),
    (("service=cpu", "cpus=-1"), "cpus"),
    (("service=cpu", "cpus=abc"), "cpus"),
    (("service=cpu", "gpus=3"), "gpus"),
    (("service=cpu", "colour=blue"), "colour"),
    (("service=cpu", "cpus=64"), "cpus"),
])
def test_bad_requests_are_refused_and_change_nothing(crew: Crew, boat: Path, test_user: str,
                                                     words: tuple[str, ...], field: str):
    crew.add_sailor("s1", "127.0.0.2")
    script = write_script(boat, "ok.sh", "exit 0\n", owner=test_user)
    if words and not words[0].startswith("script="):
        words = (f"script={script}", *words)
    before = len(crew.events())

    done = crew.cli("--chore", *words, user=test_user)

    assert done.returncode != 0
    assert field in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert len(crew.events()) == before


def test_json_is_exactly_the_endpoint_answer(crew: Crew):
    crew.add_sailor("s1", "127.0.0.2")
    printed = crew.cli_ok("--crew", "--json")
    answer = subprocess.run(["curl", "-s", f"http://127.0.0.1:{crew.port}/crew"],
                            capture_output=True, text=True, timeout=10).stdout
    assert json.loads(printed).keys() == json.loads(answer).keys()
    assert printed.strip().startswith("{")


def test_consult_all_is_for_root_only(crew: Crew, test_user: str):
    done = crew.cli("--consult", "--all", user=test_user)
    assert done.returncode != 0
    assert "root" in done.stderr


def test_views_are_written_beside_the_log(crew: Crew, boat: Path, test_user: str):
    crew.add_sailor("s1", "127.0.0.2")
    script = write_script(boat, "ok.sh", "exit 0\n", owner=test_user)
    chore_id = crew.submit(script, "service=cpu", user=test_user)
    crew.wait_chore(chore_id, "done")

    def views_written() -> bool:
        chores = json.loads((crew.captain_data / "chores.json").read_text() or "{}")
        return chores.get(chore_id, {}).get("status") == "done"
    wait_until(views_written, what="chores.json to show the chore done")
    crew_file = json.loads((crew.captain_data / "crew.json").read_text())
    assert set(crew_file["s1"]) >= {"name", "ip", "cpus", "gpus", "ram", "last_seen", "status"}
    chore = json.loads((crew.captain_data / "chores.json").read_text())[chore_id]
    assert set(chore) >= {"chore_id", "ressources", "sailor", "owner", "status", "start"}
    assert os.stat(crew.captain_data).st_mode & 0o077 == 0


def test_sailor_restart_keeps_chores_running(crew: Crew, boat: Path, test_user: str):
    daemon = crew.add_sailor("s1", "127.0.0.2")
    short = write_script(boat, "short.sh", "sleep 1.5\nexit 3\n", owner=test_user)
    chore_id = crew.submit(short, "service=cpu", user=test_user)
    crew.wait_chore(chore_id, "running")

    daemon.kill(signal.SIGKILL)
    time.sleep(2)  # the chore ends while its sailor is away
    daemon.start()

    ended = crew.wait_chore(chore_id, "failed", "done")
    assert ended["status"] == "failed" and ended["exit_code"] == 3
