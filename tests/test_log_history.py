"""The log as a feature: the live event stream, a chore's story, the views at an instant,
and the log check, against a real captain and sailor."""

import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from crew import CAPTAIN, Crew, wait_until, write_script


class Watch:
    """`captain --watch --json` running as a user, its lines collected as they come."""

    def __init__(self, crew: Crew, *words: str, user: str | None = None) -> None:
        argv = [CAPTAIN, "--watch", *words, "--port", str(crew.port), "--json"]
        if user is not None:
            argv = ["runuser", "-u", user, "--", *argv]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        stdin=subprocess.DEVNULL, text=True,
                                        start_new_session=True)
        self.events: list[dict[str, Any]] = []
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def until(self, predicate: Any, timeout_s: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while not predicate(self.events):
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; saw {self.events}"
            try:
                line = self.lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            assert line, "the watch ended"
            self.events.append(json.loads(line))
        return self.events

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put("")

    def stop(self) -> str:
        """Ctrl-C, as a terminal sends it to the whole foreground group."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        return self.process.stderr.read() if self.process.stderr else ""


def ended(chore_id: str) -> Any:
    return lambda events: any(e["type"] == "ChoreEnded" and e.get("chore_id") == chore_id
                              for e in events)


def test_watch_follows_own_chore_and_crew_but_not_others(crew: Crew, boat: Path,
                                                         test_user: str, other_user: str):
    crew.add_sailor("s1", "127.0.0.2")
    script = write_script(boat, "ok.sh", "exit 0\n", owner=test_user)
    mine = Watch(crew, user=test_user)
    theirs = Watch(crew, user=other_user)
    root = Watch(crew)
    try:
        time.sleep(0.5)  # lets the three streams open; the events below come after
        chore_id = crew.submit(script, "service=cpu", user=test_user)
        crew.cli_ok("--prereg", "s9", "127.0.0.9", "services=cpu")

        seen = mine.until(ended(chore_id))
        types = [e["type"] for e in seen if e.get("chore_id") == chore_id]
        assert types[0] == "ChoreRequested" and types[-1] == "ChoreEnded"
        assert "ChoreAssigned" in types and "ChoreStarted" in types
        assert seen[0]["owner_name"] == test_user and seen[0]["script"] == str(script)
        seqs = [e["seq"] for e in seen]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

        hidden = theirs.until(ended(chore_id))
        about = [e for e in hidden if e.get("chore_id") == chore_id]
        assert about and all("owner" not in e and "script" not in e for e in about)
        root_seen = root.until(lambda ev: any(e.get("name") == "s9" for e in ev))
        assert any(e.get("owner_name") == test_user for e in root_seen)
        theirs.until(lambda ev: any(e.get("name") == "s9" for e in ev))
    finally:
        for watch in (mine, theirs, root):
            assert "Traceback" not in watch.stop()


def test_watch_filters_and_replays_from_a_position(crew: Crew, boat: Path, test_user: str):
    crew.add_sailor("s1", "127.0.0.2")
    script = write_script(boat, "ok.sh", "exit 0\n", owner=test_user)
    first = crew.submit(script, "service=cpu", user=test_user)
    second = crew.submit(script, "service=cpu", user=test_user)
    crew.wait_chore(second, "done")

    replay = subprocess.run(
        ["curl", "-s", "-N", "-m", "3", f"http://127.0.0.1:{crew.port}/events?since=0"
         f"&chore={first}"], capture_output=True, text=True, timeout=20).stdout
    frames = [f for f in replay.split("\n\n") if f.startswith("id:")]
    data = [json.loads(f.split("data: ", 1)[1]) for f in frames]
    assert {e["chore_id"] for e in data} == {first}, replay
    assert data[0]["type"] == "ChoreRequested" and data[-1]["type"] == "ChoreEnded"
    assert frames[0].startswith(f"id: {data[0]['seq']}\nevent: ChoreRequested\n")

    from_header = subprocess.run(
        ["curl", "-s", "-N", "-m", "3", "-H", f"Last-Event-ID: {data[-1]['seq']}",
         f"http://127.0.0.1:{crew.port}/events?sailor=s1"],
        capture_output=True, text=True, timeout=20).stdout
    later = [json.loads(f.split("data: ", 1)[1]) for f in from_header.split("\n\n")
             if f.startswith("id:")]
    assert later and all(e["seq"] > data[-1]["seq"] for e in later)
    assert {e.get("chore_id") for e in later} <= {second, None}
    assert all(e.get("name", "s1") == "s1" for e in later)

    refused = crew.cli("--watch", "user=root", user=test_user)
    assert refused.returncode != 0 and "root" in refused.stderr


def test_watching_a_chore_that_already_ended_shows_its_end_and_stops(crew: Crew, boat: Path,
                                                                    test_user: str):
    crew.add_sailor("s1", "127.0.0.2")
    script = write_script(boat, "ok.sh", "exit 0\n", owner=test_user)
    chore_id = crew.submit(script, "service=cpu", user=test_user)
    crew.wait_chore(chore_id, "done")

    done = crew.cli("--watch", f"chore={chore_id}", "--json", user=test_user, timeout_s=20)
    assert done.returncode == 0, done.stderr
    end = json.loads(done.stdout)
    assert (end["type"], end["chore_id"], end["status"]) == ("ChoreEnded", chore_id, "done")
    assert "already ended" in done.stderr

    table = crew.cli("--watch", f"chore={chore_id}", user=test_user, timeout_s=20)
    assert table.returncode == 0 and f"chore {chore_id}" in table.stdout, table.stdout
    missing = crew.cli("--watch", "chore=999", user=test_user, timeout_s=20)
    assert missing.returncode != 0 and "no chore 999" in missing.stderr, missing.stderr


def test_history_tells_a_chore_story_to_its_owner_only(crew: Crew, boat: Path,
                                                       test_user: str, other_user: str):
    crew.add_sailor("s1", "127.0.0.2")
    script = write_script(boat, "fail.sh", "exit 4\n", owner=test_user)
    chore_id = crew.submit(script, "service=cpu", user=test_user)
    crew.wait_chore(chore_id, "failed")

    story = crew.cli_json("--history", chore_id, user=test_user)
    events = story["events"] if isinstance(story, dict) else story
    assert [e["type"] for e in events] == [
        "ChoreRequested", "ChoreAssigned", "ChoreStarted", "ChoreEnded"]
    assert events[-1]["exit_code"] == 4
    text = crew.cli_ok("--history", chore_id, user=test_user)
    assert f"requested by {test_user}" in text
    assert "assigned to sailor s1" in text and "ended failed" in text

    refused = crew.cli("--history", chore_id, user=other_user)
    assert refused.returncode != 0 and "another user" in refused.stderr
    assert crew.cli_json("--history", chore_id)["events"] == events
    latest = crew.cli_json("--history", "--limit", "3")["events"]
    assert len(latest) == 3 and latest[-1]["seq"] == crew.events()[-1]["seq"]
    others = crew.cli_json("--history", user=other_user)["events"]
    assert all(e.get("chore_id") is None for e in others)
    assert crew.cli("--history", "999", user=test_user).returncode != 0


def test_views_at_an_instant_come_from_the_log(crew: Crew, boat: Path, test_user: str):
    crew.cli_ok("--prereg", "s1", "127.0.0.2", "services=cpu")
    time.sleep(0.05)
    between = time.time()
    time.sleep(0.05)
    crew.cli_ok("--prereg", "s2", "127.0.0.3", "services=cpu")

    assert set(crew.cli_json("--crew", "--at", repr(between))) == {"s1"}
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(between - 3600))
    assert crew.cli_json("--crew", "--at", iso) == {}
    assert set(crew.cli_json("--crew", "--at", repr(time.time()))) == {"s1", "s2"}
    assert crew.cli_json("--consult", "--at", repr(between), user=test_user) == {}
    bad = crew.cli("--crew", "--at", "yesterday")
    assert bad.returncode != 0 and "ISO" in bad.stderr


def test_check_log_names_the_damaged_line(crew: Crew):
    crew.cli_ok("--prereg", "s1", "127.0.0.2", "services=cpu")
    crew.cli_ok("--prereg", "s2", "127.0.0.3", "services=cpu")
    crew.cli_ok("--prereg", "s3", "127.0.0.4", "services=cpu")
    good = crew.cli("--check-log", "--data", str(crew.captain_data))
    assert good.returncode == 0 and "3 events" in good.stdout, good.stdout
    report = json.loads(crew.cli_ok("--check-log", "--data", str(crew.captain_data), "--json"))
    assert report["ok"] and report["events"] == 3

    crew.captain.kill(signal.SIGTERM)
    segment = next((crew.captain_data / "log").glob("events-*.jsonl"))
    lines = segment.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b"s2", b"s7")
    segment.write_bytes(b"\n".join(lines))

    bad = crew.cli("--check-log", "--data", str(crew.captain_data))
    assert bad.returncode != 0
    assert f"{segment}:2: damaged line (checksum does not match)" in bad.stdout
    crew.captain.start()
    wait_until(lambda: crew.captain.process.poll() is not None, what="the captain to refuse")
    assert "line 2 is damaged" in crew.captain.log()


def test_a_watcher_without_identity_sees_neither_who_nor_what():
    from types import SimpleNamespace

    from captain.chores import Caller
    from captain.event_stream import EventHub, Filters, Watcher
    from eventlog import events as ev
    from projections.state import State

    captain = SimpleNamespace(recorder=SimpleNamespace(listeners=[]), state=State())
    hub = EventHub(captain)  # type: ignore[arg-type]
    requested = ev.ChoreRequested(chore_id="5", owner=1001, owner_name="alice",
                                  script="/boat/alice/secret.sh", service="cpu", seq=7)
    ended = ev.ChoreEnded(chore_id="5", status="failed", reason="exit code 3", exit_code=3,
                          seq=9)
    removed = ev.SailorRemoved(name="s1", by=0, seq=10)
    user = ev.UserUpserted(uid=1001, name="alice", chores_limit=2, seq=11)
    hub.on_durable(requested)

    nobody = Watcher(None, Filters())
    shown = hub.visible_part(nobody, requested, hub.owners)
    assert shown == {"type": "ChoreRequested", "v": 1, "seq": 7, "at": 0.0, "chore_id": "5",
                     "sailor": None, "reason": "no available sailor"}
    assert hub.visible_part(nobody, ended, hub.owners)["exit_code"] == 3
    assert hub.visible_part(nobody, removed, hub.owners) == {
        "type": "SailorRemoved", "v": 1, "seq": 10, "at": 0.0, "name": "s1"}
    assert hub.visible_part(nobody, user, hub.owners) is None

    alice = Watcher(Caller(uid=1001, name="alice"), Filters())
    assert hub.visible_part(alice, requested, hub.owners)["script"] == "/boat/alice/secret.sh"
    assert hub.visible_part(alice, user, hub.owners) is not None
    bob = Watcher(Caller(uid=1002, name="bob"), Filters(chore="5"))
    assert "owner_name" not in hub.visible_part(bob, requested, hub.owners)
    assert hub.visible_part(bob, removed, hub.owners) is None
    frame = hub.frame(bob, ended)
    assert frame is not None and frame.startswith(b"id: 9\nevent: ChoreEnded\ndata: {")


def test_watch_goes_on_across_a_captain_restart_without_repeats(crew: Crew):
    watch = Watch(crew)
    try:
        time.sleep(0.5)  # lets the stream open
        crew.cli_ok("--prereg", "s1", "127.0.0.2", "services=cpu")
        watch.until(lambda ev: any(e.get("name") == "s1" for e in ev))
        crew.restart_captain()
        crew.cli_ok("--prereg", "s2", "127.0.0.3", "services=cpu")
        seen = watch.until(lambda ev: any(e.get("name") == "s2" for e in ev), 30)
        seqs = [e["seq"] for e in seen]
        assert seqs == sorted(set(seqs))
    finally:
        assert "Traceback" not in watch.stop()
