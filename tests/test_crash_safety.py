"""Crashes of the daemons while work goes on: the captain killed at random moments, the
sailor killed while its chores run. Nothing answered is lost, nothing runs twice, and every
final state is what the sailor really saw.

`CAPTAIN_STRESS_ROUNDS=N` runs the captain test with N kills instead of the short CI run
(`tests/stress_log.sh` does that).
"""

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

from crew import Crew, wait_until, write_script

ROUNDS = int(os.environ.get("CAPTAIN_STRESS_ROUNDS", "3"))

WORK = """\
echo "$CAPTAIN_CHORE_ID" >>"$(dirname "$0")/ran.txt"
sleep 0.$((RANDOM % 4))
exit $((CAPTAIN_CHORE_ID % 3))
"""


class Workload(threading.Thread):
    """Submits chores and cancels some, remembering every answer the captain gave."""

    def __init__(self, crew: Crew, script: Path, user: str) -> None:
        super().__init__(daemon=True)
        self.crew, self.script, self.user = crew, script, user
        self.answered: list[str] = []
        self.cancel_answered: list[str] = []
        self.halt = threading.Event()
        self.random = random.Random(7)

    def run(self) -> None:
        while not self.halt.is_set():
            done = self.crew.cli("--chore", f"script={self.script}", "service=cpu", "--json",
                                 user=self.user)
            if done.returncode == 0:
                self.answered.append(json.loads(done.stdout)["chore_id"])
            if self.answered and self.random.random() < 0.25:
                victim = self.random.choice(self.answered)
                if self.crew.cli("--cancel", victim, user=self.user).returncode == 0:
                    self.cancel_answered.append(victim)


def test_captain_killed_at_random_moments_keeps_every_answered_chore(
        crew: Crew, boat: Path, test_user: str):
    crew.add_sailor("s1", "127.0.0.2", cpus=2)
    script = write_script(boat, "work.sh", WORK, owner=test_user)
    workload = Workload(crew, script, test_user)
    workload.start()
    moments = random.Random(11)
    try:
        for _ in range(ROUNDS):
            answered_before = len(workload.answered)
            wait_until(lambda n=answered_before: len(workload.answered) >= n + 2, 60,
                       "the workload to get answers")
            time.sleep(moments.uniform(0.0, 0.8))  # a random moment, not a wait for a state
            crew.restart_captain()
    finally:
        workload.halt.set()
        workload.join(timeout=60)

    def all_ended() -> bool:
        chores = crew.chores()
        return bool(chores) and all(c["status"] in ("done", "failed", "canceled")
                                    for c in chores.values())
    wait_until(all_ended, 90, "every chore to end")
    check_no_loss_no_repeat(crew, boat, workload.answered)


def check_no_loss_no_repeat(crew: Crew, boat: Path, answered: list[str]) -> None:
    requested = Counter(e["chore_id"] for e in crew.events() if e["type"] == "ChoreRequested")
    assert all(count == 1 for count in requested.values()), requested
    assert set(answered) <= set(requested)
    ran = Counter((boat / "ran.txt").read_text().split())
    assert all(count == 1 for count in ran.values()), f"ran twice: {ran}"

    chores = crew.chores()
    assert set(chores) == set(requested)
    for chore_id, chore in chores.items():
        code = int(chore_id) % 3
        if chore["status"] == "done":
            assert code == 0 and ran[chore_id] == 1, chore
        elif chore["status"] == "failed":
            assert chore["exit_code"] == code and ran[chore_id] == 1, chore
        else:
            assert chore["status"] == "canceled", chore


def test_sailor_killed_while_chores_run_reports_their_true_end(
        crew: Crew, boat: Path, test_user: str):
    daemon = crew.add_sailor("s1", "127.0.0.2", cpus=2)
    quick = write_script(boat, "quick.sh", (
        'echo "$CAPTAIN_CHORE_ID" >>"$(dirname "$0")/ran.txt"\n'
        'while [ ! -e "$(dirname "$0")/go-quick" ]; do sleep 0.1; done\n'
        'touch "$(dirname "$0")/quick-ended"\nexit 5\n'), owner=test_user)
    slow = write_script(boat, "slow.sh", (
        'echo "$CAPTAIN_CHORE_ID" >>"$(dirname "$0")/ran.txt"\n'
        'while [ ! -e "$(dirname "$0")/go-slow" ]; do sleep 0.1; done\nexit 7\n'),
        owner=test_user)
    ends_while_down = crew.submit(quick, "service=cpu", user=test_user)
    runs_through = crew.submit(slow, "service=cpu", user=test_user)
    crew.wait_chore(ends_while_down, "running")
    crew.wait_chore(runs_through, "running")

    daemon.kill(signal.SIGKILL)
    (boat / "go-quick").touch()
    wait_until(lambda: (boat / "quick-ended").exists(), what="the chore to end, sailor down")
    assert crew.chore(runs_through)["status"] == "running"
    daemon.start()

    first = crew.wait_chore(ends_while_down, "failed", "done")
    assert first["status"] == "failed" and first["exit_code"] == 5, first
    assert crew.chore(runs_through)["status"] == "running"
    (boat / "go-slow").touch()
    second = crew.wait_chore(runs_through, "failed", "done")
    assert second["status"] == "failed" and second["exit_code"] == 7, second
    assert Counter((boat / "ran.txt").read_text().split()) == {
        ends_while_down: 1, runs_through: 1}
