"""Scheduling rules end to end: time limits, reasons, user limits, retention, memory, GPUs,
sailor states and fairness, through the CLI and its --json output."""

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from crew import CAPTAIN, Crew, wait_until, write_script
from sailor import cgroups


def cli_as(crew: Crew, user: str, *args: str) -> subprocess.Popen[str]:
    argv = ["runuser", "-u", user, "--", CAPTAIN, *args, "--port", str(crew.port)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def pids_of(user: str, pattern: str) -> list[int]:
    found = subprocess.run(["pgrep", "-u", user, "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


@pytest.fixture
def short_crew(scratch: Path):
    """A captain that keeps ended chores 2 s and keeps a sailor for a chore waiting 1 s."""
    running = Crew(scratch, ("--retention", "2", "--reserve-after", "1"))
    running.start_captain()
    yield running
    running.stop()


# --- sailors: max_time, set, remove ---------------------------------------------------------


@pytest.mark.parametrize("bad", ["2-12x", "", "-1-00:00:00", "00-00:61:00", "abc", "0",
                                 "１:00", "1-24:00:00"])
def test_a_bad_max_time_is_refused(crew: Crew, bad: str):
    done = crew.cli("--prereg", "s9", "127.0.0.9", "services=cpu", f"max_time={bad}")
    assert done.returncode != 0
    assert "max_time" in done.stderr
    assert "expected" in done.stderr or "must" in done.stderr or "zero" in done.stderr
    assert "Traceback" not in done.stderr
    assert crew.cli_json("--crew") == {}


def test_max_time_is_shown_in_its_canonical_form_and_none_removes_it(crew: Crew):
    crew.cli_ok("--prereg", "s1", "127.0.0.2", "services=cpu", "max_time=3-0:00")
    assert crew.cli_json("--crew")["s1"]["max_time"] == "03-00:00:00"

    crew.cli_ok("--sailor-set", "name=s1", "max_time=4:00", "services=cpu,gpu")
    sailor = crew.cli_json("--crew")["s1"]
    assert (sailor["max_time"], sailor["max_time_s"]) == ("00-00:04:00", 240)
    assert sailor["services"] == ["cpu", "gpu"]

    done = crew.cli("--sailor-set", "name=s1", "max_time=1:75:00")
    assert done.returncode != 0 and "max_time" in done.stderr
    assert crew.cli_json("--crew")["s1"]["max_time_s"] == 240

    crew.cli_ok("--sailor-set", "name=s1", "max_time=none", "ip=127.0.0.5")
    sailor = crew.cli_json("--crew")["s1"]
    assert (sailor["max_time"], sailor["ip"]) == (None, "127.0.0.5")


def test_sailor_changes_are_for_root_only(crew: Crew, test_user: str):
    crew.cli_ok("--prereg", "s1", "127.0.0.2", "services=cpu")
    for args in (("--sailor-set", "name=s1", "services=x"), ("--sailor-remove", "s1"),
                 ("--user-set", "uid=0", "chores_limit=1")):
        done = crew.cli(*args, user=test_user)
        assert done.returncode != 0 and "root" in done.stderr, args
    assert crew.cli_json("--crew")["s1"]["services"] == ["cpu"]
    done = crew.cli("--sailor-remove", "nosuch")
    assert done.returncode != 0 and "nosuch" in done.stderr


def test_max_time_stops_a_long_chore_with_its_reason(crew: Crew, boat: Path, test_user: str):
    """A long grace between SIGTERM and SIGKILL: a chore that dies of SIGTERM ends at once."""
    crew.add_sailor("s1", "127.0.0.2", extra=("--cancel-grace", "20"))
    crew.cli_ok("--sailor-set", "name=s1", "max_time=00-00:00:03")
    long = write_script(boat, "long.sh", "sleep 60\n", owner=test_user)

    chore_id = crew.submit(long, "service=cpu", user=test_user)
    running = crew.wait_chore(chore_id, "running")
    ended = crew.wait_chore(chore_id, "canceled", "failed", "done", timeout_s=30)

    assert ended["status"] == "canceled", ended
    assert ended["reason"] == "exceeded time limit"
    assert 2.5 <= ended["ended_at"] - running["start"] < 10


def test_the_captain_enforces_max_time_on_its_own_clock(crew: Crew, boat: Path,
                                                       test_user: str):
    """The chore started with no limit, so its sailor has no deadline: the captain stops it."""
    crew.add_sailor("s1", "127.0.0.2")
    long = write_script(boat, "long.sh", "sleep 60\n", owner=test_user)
    chore_id = crew.submit(long, "service=cpu", user=test_user)
    crew.wait_chore(chore_id, "running")

    crew.cli_ok("--sailor-set", "name=s1", "max_time=0:03")
    ended = crew.wait_chore(chore_id, "canceled", "failed", "done", timeout_s=30)

    assert (ended["status"], ended["reason"]) == ("canceled", "exceeded time limit")
    asked = [e for e in crew.events() if e["type"] == "ChoreCancelRequested"
             and e["chore_id"] == chore_id]
    assert [e["reason"] for e in asked] == ["exceeded time limit"]
    wait_until(lambda: not pids_of(test_user, "sleep 60"), 10, "the chore's processes to end")


def test_removing_a_busy_sailor_needs_force_and_cancels_its_chores(crew: Crew, boat: Path,
                                                                 test_user: str):
    crew.add_sailor("s1", "127.0.0.2", cpus=1)
    long = write_script(boat, "long.sh", "sleep 60\n", owner=test_user)
    running = crew.submit(long, "service=cpu", user=test_user)
    crew.wait_chore(running, "running")
    waiting = crew.submit(long, "sailor=s1", user=test_user)

    done = crew.cli("--sailor-remove", "s1")
    assert done.returncode != 0 and "--force" in done.stderr
    assert "s1" in crew.cli_json("--crew")

    crew.cli_ok("--sailor-remove", "s1", "--force")
    assert "s1" not in crew.cli_json("--crew")
    for chore_id in (running, waiting):
        chore = crew.chore(chore_id)
        assert (chore["status"], chore["reason"]) == ("canceled", "canceled by admin")
    wait_until(lambda: not pids_of(test_user, "sleep 60"), 15, "the chore to be stopped")

    crew.cli_ok("--prereg", "s1", "127.0.0.2", "services=cpu")
    wait_until(lambda: crew.sailor_field("s1", "status") == "idle", what="s1 back")


# --- reasons and cancels --------------------------------------------------------------------


def test_every_chore_has_a_reason_from_its_creation(crew: Crew, boat: Path, test_user: str):
    crew.cli_ok("--prereg", "ghost", "127.0.0.99", "services=held")
    crew.add_sailor("s1", "127.0.0.2", cpus=1)
    ok = write_script(boat, "ok.sh", "exit 0\n", owner=test_user)
    bad = write_script(boat, "bad.sh", "exit 7\n", owner=test_user)
    killed = write_script(boat, "killed.sh", "kill -KILL $$\n", owner=test_user)

    held = crew.cli_json("--chore", f"script={ok}", "service=held", user=test_user)
    assert (held["status"], held["reason"]) == ("pending", "no available sailor")
    by_name = crew.submit(ok, "sailor=ghost", user=test_user)
    wait_until(lambda: crew.chore(by_name)["reason"] == "sailor down", what="'sailor down'")

    outcomes = {}
    for script in (ok, bad, killed):
        chore_id = crew.submit(script, "service=cpu", user=test_user)
        outcomes[script.name] = crew.wait_chore(chore_id, "done", "failed")
    assert (outcomes["ok.sh"]["status"], outcomes["ok.sh"]["reason"]) == ("done", "exit code 0")
    assert outcomes["bad.sh"]["status"] == "failed"
    assert (outcomes["bad.sh"]["exit_code"], outcomes["bad.sh"]["reason"]) == (7, "exit code 7")
    assert outcomes["killed.sh"]["status"] == "failed"
    assert outcomes["killed.sh"]["signal"] == signal.SIGKILL
    assert outcomes["killed.sh"]["reason"] == "killed by signal 9"

    crew.cli_ok("--cancel", held["chore_id"])
    chore = crew.chore(held["chore_id"])
    assert (chore["status"], chore["reason"]) == ("canceled", "canceled by admin")


def test_a_cancel_racing_the_natural_end_gives_what_happened(crew: Crew, boat: Path,
                                                             test_user: str):
    """The cancel lands around the moment the chore exits by itself: a natural exit ends
    failed with its code, a death by the cancel's signal ends canceled; never a mix."""
    crew.add_sailor("s1", "127.0.0.2", cpus=2)
    racer = write_script(boat, "racer.sh", "sleep 0.4\nexit 3\n", owner=test_user)
    outcomes = []
    for round_number in range(12):
        chore_id = crew.submit(racer, "service=cpu", user=test_user)
        crew.wait_chore(chore_id, "running", "failed")
        delay_s = 0.05 * (round_number % 6)
        subprocess.run(["sleep", str(delay_s)])
        crew.cli("--cancel", chore_id, user=test_user)
        ended = crew.wait_chore(chore_id, "canceled", "failed", "done")
        if ended["status"] == "canceled":
            assert ended["signal"] in (signal.SIGTERM, signal.SIGKILL), ended
            assert ended["exit_code"] is None and ended["reason"] == "canceled by user"
        else:
            assert ended["status"] == "failed", ended
            assert (ended["exit_code"], ended["signal"]) == (3, None)
            assert ended["reason"] == "exit code 3"
        outcomes.append(ended["status"])
    assert "canceled" in outcomes


# --- users ----------------------------------------------------------------------------------


def test_users_view_and_upsert(crew: Crew, test_user: str):
    uid = pwd.getpwnam(test_user).pw_uid
    assert crew.cli_json("--users") == {}
    crew.cli_ok("--user-set", f"uid={uid}", "time_limit=1-00:00:00", "chores_limit=4",
                "notes=thesis deadline")
    crew.cli_ok("--user-set", f"uid={uid}", "chores_limit=5")
    users = crew.cli_json("--users", user=test_user)
    assert users == {str(uid): {"name": test_user, "uid": str(uid), "time_limit": "01-00:00:00",
                                "chores_limit": 5, "notes": "thesis deadline"}}

    def file_matches() -> bool:
        path = crew.captain_data / "users.json"
        return path.exists() and json.loads(path.read_text()) == users
    wait_until(file_matches, what="users.json to match GET /users")

    crew.cli_ok("--user-set", f"uid={uid}", "time_limit=none", "chores_limit=none",
                "notes=none")
    user = crew.cli_json("--users")[str(uid)]
    assert (user["time_limit"], user["chores_limit"], user["notes"]) == (None, None, "")
    for bad in ("time_limit=0", "time_limit=1:61", "chores_limit=-1", "colour=red"):
        done = crew.cli("--user-set", f"uid={uid}", bad)
        assert done.returncode != 0 and bad.split("=")[0] in done.stderr, done.stderr
    done = crew.cli("--user-set", "uid=4000000", "chores_limit=1")
    assert done.returncode != 0 and "name" in done.stderr


def test_chores_limit_holds_under_concurrent_submissions(crew: Crew, boat: Path,
                                                         test_user: str):
    crew.cli_ok("--prereg", "ghost", "127.0.0.99", "services=held")
    uid = pwd.getpwnam(test_user).pw_uid
    crew.cli_ok("--user-set", f"uid={uid}", "chores_limit=4")
    script = write_script(boat, "wait.sh", "sleep 60\n", owner=test_user)

    runs = [cli_as(crew, test_user, "--chore", f"script={script}", "service=held", "--json")
            for _ in range(20)]
    answers = [(run.wait(timeout=120), run.communicate()) for run in runs]

    accepted = [out for code, (out, _) in answers if code == 0]
    refused = [json.loads(out) for code, (out, _) in answers if code != 0]
    assert len(accepted) == 4
    assert len(refused) == 16
    assert all("user chores limit reached" in r["error"] for r in refused)
    assert len(crew.chores()) == 4

    first = json.loads(accepted[0])["chore_id"]
    crew.cli_ok("--cancel", first, user=test_user)
    crew.submit(script, "service=held", user=test_user)


def test_user_time_limit_cancels_the_newest_running_chores(crew: Crew, boat: Path,
                                                          test_user: str):
    crew.add_sailor("s1", "127.0.0.2", cpus=2)
    uid = pwd.getpwnam(test_user).pw_uid
    crew.cli_ok("--user-set", f"uid={uid}", "time_limit=0:06")
    long = write_script(boat, "long.sh", "sleep 60\n", owner=test_user)

    older = crew.submit(long, "service=cpu", user=test_user)
    crew.wait_chore(older, "running")
    newer = crew.submit(long, "service=cpu", user=test_user)
    crew.wait_chore(newer, "running")

    first_end = crew.wait_chore(newer, "canceled", timeout_s=30)
    assert first_end["reason"] == "exceeded user time limit"
    assert crew.chore(older)["status"] == "running"
    second_end = crew.wait_chore(older, "canceled", timeout_s=30)
    assert second_end["reason"] == "exceeded user time limit"
    assert second_end["ended_at"] > first_end["ended_at"]

    quick = write_script(boat, "quick.sh", "exit 0\n", owner=test_user)
    crew.wait_chore(crew.submit(quick, "service=cpu", user=test_user), "done")


# --- retention ------------------------------------------------------------------------------


def test_an_ended_chore_leaves_the_views_but_not_the_log(short_crew: Crew, boat: Path,
                                                         test_user: str):
    crew = short_crew
    crew.add_sailor("s1", "127.0.0.2")
    quick = write_script(boat, "quick.sh", "exit 0\n", owner=test_user)
    chore_id = crew.submit(quick, "service=cpu", user=test_user)
    crew.wait_chore(chore_id, "done")

    wait_until(lambda: chore_id not in crew.cli_json("--consult", user=test_user), 20,
               "the chore to leave --consult")
    assert chore_id not in crew.chores()
    kinds = [e["type"] for e in crew.events() if e.get("chore_id") == chore_id]
    assert kinds[0] == "ChoreRequested" and "ChoreEnded" in kinds
    assert any(chore_id in e.get("chore_ids", []) for e in crew.events()
               if e["type"] == "ChoresArchived")


# --- memory ---------------------------------------------------------------------------------


def _v1_memory_writable() -> bool:
    return os.access(cgroups.CGROUP_ROOT / "memory", os.W_OK)


@pytest.mark.skipif(not _v1_memory_writable(), reason="needs a writable v1 memory cgroup")
def test_a_chore_over_its_ram_ends_out_of_memory(crew: Crew, boat: Path, test_user: str):
    crew.add_sailor("s1", "127.0.0.2")
    hog = write_script(boat, "hog.sh", "python3 -c 'b = b\"x\" * (400 * 2**20)'\nexit 0\n",
                       owner=test_user)
    fits = write_script(boat, "fits.sh", "python3 -c 'b = b\"x\" * (8 * 2**20)'\n",
                        owner=test_user)

    small = crew.submit(fits, "service=cpu", "ram=256M", user=test_user)
    over = crew.submit(hog, "service=cpu", "ram=100M", user=test_user)

    assert crew.wait_chore(small, "done", "failed")["status"] == "done"
    ended = crew.wait_chore(over, "done", "failed", "canceled", timeout_s=30)
    assert (ended["status"], ended["reason"]) == ("failed", "out of memory"), ended
    assert ended["memory_limit"] == "cgroup"
    assert ended["ressources"]["ram"] == 100 * 2**20


# --- GPUs and sailor states -----------------------------------------------------------------


GPU_PROBE = 'echo "$CUDA_VISIBLE_DEVICES" > "$(dirname "$0")/gpus-$CAPTAIN_CHORE_ID"\nsleep 30\n'


def test_gpus_are_granted_exactly(crew: Crew, boat: Path, test_user: str):
    crew.add_sailor("g1", "127.0.0.2", cpus=2, gpus="A100:80G,A100:80G", services="gpu")
    probe = write_script(boat, "probe.sh", GPU_PROBE, owner=test_user)
    assert len(crew.cli_json("--crew")["g1"]["gpus"]) == 2

    first = crew.submit(probe, "service=gpu", "gpus=1", user=test_user)
    second = crew.submit(probe, "service=gpu", "gpus=A100:1", "vram=40G", user=test_user)
    chores = [crew.wait_chore(c, "running") for c in (first, second)]
    wait_until(lambda: all((boat / f"gpus-{c}").exists() for c in (first, second)),
               what="both chores to write their GPUs")

    granted = [c["gpu_ids"] for c in chores]
    assert sorted(g for ids in granted for g in ids) == [0, 1]
    for chore in chores:
        seen = (boat / f"gpus-{chore['chore_id']}").read_text().strip()
        assert seen == ",".join(map(str, chore["gpu_ids"]))
    sailor = crew.cli_json("--crew")["g1"]
    assert sailor["status"] == "full" and sorted(sailor["gpus_in_use"]) == [0, 1]

    for words, field in ((("gpus=H100:1",), "gpus"), (("gpus=1", "vram=100G"), "gpus"),
                         (("gpus=3",), "gpus")):
        done = crew.cli("--chore", f"script={probe}", "service=gpu", *words, user=test_user)
        assert done.returncode != 0 and field in done.stderr, (words, done.stderr)


def test_sailor_states_follow_its_load_and_silence(crew: Crew, boat: Path, test_user: str):
    daemon = crew.add_sailor("s1", "127.0.0.2", cpus=2)
    long = write_script(boat, "long.sh", "sleep 60\n", owner=test_user)
    assert crew.sailor_field("s1", "status") == "idle"
    one = crew.submit(long, "service=cpu", user=test_user)
    crew.wait_chore(one, "running")
    assert crew.sailor_field("s1", "status") == "busy"
    two = crew.submit(long, "service=cpu", user=test_user)
    crew.wait_chore(two, "running")
    assert crew.sailor_field("s1", "status") == "full"

    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: crew.sailor_field("s1", "status") == "down", 20, "s1 down")
    finally:
        daemon.process.send_signal(signal.SIGCONT)
    wait_until(lambda: crew.sailor_field("s1", "status") == "full", 20, "s1 back")


def test_a_sailor_back_without_its_chore_reports_it_lost(crew: Crew, boat: Path,
                                                         test_user: str):
    daemon = crew.add_sailor("s1", "127.0.0.2")
    long = write_script(boat, "long.sh", "sleep 60\n", owner=test_user)
    chore_id = crew.submit(long, "service=cpu", user=test_user)
    crew.wait_chore(chore_id, "running")

    daemon.kill(signal.SIGKILL)
    # (the keeper on standby ends by itself once its sailor is gone: it may be gone already)
    for pid in pids_of("root", f"sailor.keeper {crew.root}/s1/") + pids_of(test_user, "sleep 60"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    (crew.root / "s1" / "chores.json").unlink()
    shutil.rmtree(crew.root / "s1" / "chores", ignore_errors=True)
    daemon.start()

    ended = crew.wait_chore(chore_id, "failed", "done", "canceled", timeout_s=30)
    assert (ended["status"], ended["reason"]) == ("failed", "sailor lost")


def test_a_chore_the_captain_gave_up_on_is_killed_when_its_sailor_returns(
        crew: Crew, boat: Path, test_user: str):
    daemon = crew.add_sailor("s1", "127.0.0.2")
    long = write_script(boat, "long.sh", "sleep 60\n", owner=test_user)
    chore_id = crew.submit(long, "service=cpu", user=test_user)
    crew.wait_chore(chore_id, "running")

    daemon.kill(signal.SIGKILL)  # the chore's keeper lives on
    crew.cli_ok("--sailor-remove", "s1", "--force")
    assert crew.chore(chore_id)["status"] == "canceled"
    assert pids_of(test_user, "sleep 60")

    crew.cli_ok("--prereg", "s1", "127.0.0.2", "services=cpu")
    daemon.start()
    wait_until(lambda: not pids_of(test_user, "sleep 60"), 30, "the orphan chore to be killed")
    wait_until(lambda: crew.sailor_field("s1", "status") == "idle", what="s1 idle")


# --- fairness -------------------------------------------------------------------------------


def test_a_large_chore_is_not_starved_by_small_ones(short_crew: Crew, boat: Path,
                                                    test_user: str):
    """s1 has 2 cores. A 2-core chore waits behind a 1-core one; later 1-core chores would
    keep one core busy for ever, but once the big one has waited 1 s s1 is kept for it."""
    crew = short_crew
    crew.add_sailor("s1", "127.0.0.2", cpus=2)
    short = write_script(boat, "short.sh", "sleep 3\n", owner=test_user)
    quick = write_script(boat, "quick.sh", "exit 0\n", owner=test_user)

    first = crew.submit(short, "service=cpu", "cpus=1", user=test_user)
    crew.wait_chore(first, "running")
    big = crew.submit(quick, "service=cpu", "cpus=2", user=test_user)
    wait_until(lambda: "kept for it" in crew.chore(big)["reason"], 10, "s1 to be kept")
    small = crew.submit(short, "service=cpu", "cpus=1", user=test_user)
    wait_until(lambda: "kept for older chore" in crew.chore(small)["reason"], 10,
               "the small chore to wait for the big one")
    assert crew.chore(small)["status"] == "pending"

    crew.wait_chore(big, "done", timeout_s=30)
    crew.wait_chore(small, "running", "done", timeout_s=30)
    started = {c: crew.chore(c)["start"] for c in (big, small)}
    assert started[big] <= started[small]
