"""The dispatcher against sailors that do not answer: a chore never runs on two sailors."""

import signal
from pathlib import Path

from crew import Crew, wait_until, write_script


def test_silent_sailor_is_passed_over_and_its_copy_is_stopped(crew: Crew, boat: Path,
                                                               test_user: str):
    s1 = crew.add_sailor("s1", "127.0.0.2")
    crew.add_sailor("s2", "127.0.0.3")
    marks = boat / "marks.txt"
    script = write_script(boat, "once.sh", f"sleep 4\necho \"$CAPTAIN_CHORE_ID\" >> {marks}\n",
                          owner=test_user)

    assert s1.process is not None
    s1.process.send_signal(signal.SIGSTOP)
    try:
        chore_id = crew.submit(script, "sailor=s1", user=test_user)
        wait_until(lambda: "did not answer" in crew.chore(chore_id).get("reason", "")
                   or crew.chore(chore_id).get("status") == "pending",
                   timeout_s=20, what="the order to time out")
        moved = crew.submit(script, "service=cpu", user=test_user)
        assert crew.wait_chore(moved, "running")["sailor"] == "s2"
    finally:
        s1.process.send_signal(signal.SIGCONT)

    # s1 wakes up with the late order and the cancel queued: whatever order it reads them
    # in, its copy must not survive, and each chore finally runs once.
    crew.wait_chore(moved, "done", timeout_s=30)
    crew.wait_chore(chore_id, "done", timeout_s=60)
    lines = marks.read_text().split()
    assert lines.count(moved) == 1
    assert lines.count(chore_id) == 1
