"""The log keeps its promises: old logs replay, snapshots bound the restart, a full disk
refuses the batch and nothing more, and a crash at the worst step loses nothing answered."""

import asyncio
import json
import logging
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import msgspec
import pytest

from captain.recorder import Recorder
from crew import Crew, wait_until, write_script
from eventlog import events as ev
from eventlog.codec import encode_line, verify_line
from eventlog.store import EventStore
from projections import snapshots
from projections.state import State, apply

FIXTURES = Path(__file__).parent / "fixtures"
FAULT_EXIT_CODE = 86


# --- schema: an older log still replays -----------------------------------------------------


def test_a_log_written_by_an_earlier_version_still_replays(tmp_path: Path):
    shutil.copytree(FIXTURES / "log-v1", tmp_path / "log")
    state = State()
    for event in EventStore(tmp_path / "log").replay():
        apply(state, event)

    assert state.last_seq == 18 and state.last_chore_number == 2
    assert set(state.sailors) == {"s1"} and not state.sailors["s1"].up
    assert state.sailors["s1"].gpus == [ev.Gpu("A100", 80 * 2**30)]
    assert set(state.chores) == {"2"} and state.chores["2"].status == "canceled"
    assert state.chores["2"].refused_by == ["s1"]
    assert state.users["1001"].chores_limit == 4
    assert state.sailors["s1"].cores_in_use == [] and state.pending == {}


def test_an_event_that_gained_a_field_with_a_default_decodes_old_lines():
    class ChoreEnded(ev.Event, tag="ChoreEnded"):
        chore_id: str
        status: str
        reason: str = ""
        exit_code: int | None = None
        signal: int | None = None
        cpu_s: float = 0.0

    lines = (FIXTURES / "log-v1" / "events-000000000001.jsonl").read_bytes().splitlines()
    ended = [line for line in lines if b'"ChoreEnded"' in line]
    decoded = msgspec.json.decode(verify_line(ended[0]), type=ChoreEnded)
    assert decoded.exit_code == 0 and decoded.cpu_s == 0.0 and decoded.seq == 10
    assert decoded.v == 1


# --- snapshots ------------------------------------------------------------------------------


def test_replay_after_any_position_skips_exactly_the_covered_lines(tmp_path: Path):
    folder = tmp_path / "log"
    folder.mkdir()
    with open(folder / "events-000000000001.jsonl", "wb") as file:
        for seq in range(1, 31):
            file.write(encode_line(ev.SailorWentDown(name=f"s{seq}", silent_s=seq, seq=seq)))
    store = EventStore(folder)
    for after in range(0, 32):
        assert [e.seq for e in store.replay(after)] == list(range(after + 1, 31))


def prereg(number: int) -> ev.SailorPreregistered:
    return ev.SailorPreregistered(name=f"s{number}", ip=f"10.0.1.{number}", services=["cpu"])


async def record_sailors(data: Path, count: int, snapshot_every: int) -> State:
    recorder = Recorder(data / "log", snapshot_every=snapshot_every)
    await recorder.open()
    for number in range(1, count + 1):
        await recorder.record(prereg(number))
        await recorder.snapshots.close()  # lets each snapshot finish: the test is exact
    await recorder.close()
    return recorder.state


async def reopen(data: Path) -> tuple[State, int]:
    recorder = Recorder(data / "log", snapshot_every=0)
    count = await recorder.open()
    await recorder.close()
    return recorder.state, count


def test_restart_reads_the_newest_good_snapshot_and_the_tail(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture):
    before = asyncio.run(record_sailors(tmp_path, 11, snapshot_every=4))
    found = snapshots.listed(tmp_path / "snapshots")
    assert [seq for seq, _ in found] == [8, 4]

    after, replayed = asyncio.run(reopen(tmp_path))
    assert after == before and replayed == 3

    found[0][1].write_bytes(found[0][1].read_bytes().replace(b"s5", b"s9"))
    with caplog.at_level(logging.WARNING):
        after, replayed = asyncio.run(reopen(tmp_path))
    assert "checksum does not match" in caplog.text
    assert after == before and replayed == 7


def test_segments_covered_by_a_snapshot_may_be_archived(tmp_path: Path):
    recorder_state = asyncio.run(record_sailors(tmp_path, 9, snapshot_every=4))
    store = EventStore(tmp_path / "log", segment_events=3)
    assert len(store.segments()) == 1
    # Roll the same events into segments of three, as a long-lived log would be.
    lines = store.segments()[0].read_bytes().splitlines(keepends=True)
    store.segments()[0].unlink()
    for first in range(0, 9, 3):
        (tmp_path / "log" / f"events-{first + 1:012d}.jsonl").write_bytes(
            b"".join(lines[first:first + 3]))
    archive = tmp_path / "archive"
    archive.mkdir()
    for path in EventStore(tmp_path / "log").segments()[:2]:  # seq 1-6, covered by seq 8
        path.rename(archive / path.name)

    after, _ = asyncio.run(reopen(tmp_path))
    assert after == recorder_state
    from eventlog.check import check_folder
    assert check_folder(tmp_path / "log", tmp_path / "snapshots").ok


def test_a_failed_write_never_leaves_a_snapshot_ahead_of_the_log(tmp_path: Path):
    async def scenario() -> tuple[State, State]:
        recorder = Recorder(tmp_path / "log", snapshot_every=2)
        await recorder.open()
        await recorder.record(prereg(1))
        real_write = recorder.store._write_durably
        calls = {"n": 0}

        def failing(data: bytes, count: int) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise OSError(28, "No space left on device")
            real_write(data, count)
        recorder.store._write_durably = failing  # type: ignore[method-assign]
        first = recorder.record(prereg(2))
        taking = asyncio.ensure_future(recorder.snapshots.take())
        with pytest.raises(Exception, match="No space left"):
            await first
        await taking
        durable = State(last_seq=recorder.state.last_seq, sailors=dict(recorder.state.sailors))
        await recorder.record(prereg(3))
        await recorder.record(prereg(4))
        await recorder.close()
        return durable, recorder.state

    durable, final = asyncio.run(scenario())
    assert set(durable.sailors) == {"s1"} and durable.last_seq == 1
    assert set(final.sailors) == {"s1", "s3", "s4"} and final.last_seq == 3
    for seq, path in snapshots.listed(tmp_path / "snapshots"):
        state, _ = snapshots.decode(path.read_bytes())
        assert "s2" not in state.sailors and seq <= 3


def test_the_captain_restarts_from_a_snapshot(scratch: Path):
    crew = Crew(scratch, ("--snapshot-every", "5"))
    crew.start_captain()
    try:
        for number in range(1, 13):
            crew.cli_ok("--prereg", f"s{number}", f"127.0.1.{number}", "services=cpu")
        before = crew.cli_json("--crew")
        wait_until(lambda: snapshots.listed(crew.captain_data / "snapshots"),
                   what="a snapshot")
        crew.restart_captain()
        assert crew.cli_json("--crew") == before
        replayed = [line for line in crew.captain.log().splitlines() if "replayed" in line]
        assert int(replayed[-1].split("replayed ")[1].split()[0]) < 5, replayed
    finally:
        crew.stop()


# --- a full disk ----------------------------------------------------------------------------


@pytest.fixture
def small_disk(scratch: Path):
    """The captain's data folder on a tmpfs of 1 MiB, mounted for this test only."""
    folder = scratch / "captain"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(folder)],
                   check=True)
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True)
    return filler


def test_a_full_disk_refuses_the_batch_and_the_captain_goes_on(
        scratch: Path, small_disk: Path, boat: Path, test_user: str):
    crew = Crew(scratch, ("--snapshot-every", "0"))
    crew.start_captain()
    try:
        crew.add_sailor("s1", "127.0.0.2")
        script = write_script(boat, "ok.sh", "exit 0\n", owner=test_user)
        first = crew.submit(script, "service=cpu", user=test_user)
        crew.wait_chore(first, "done")
        filler = fill(small_disk)

        answers: list[subprocess.CompletedProcess[str]] = []
        for _ in range(20):
            batch = submit_together(crew, script, test_user, 4)
            answers += batch
            if any(a.returncode != 0 for a in batch):
                break
        refused = [a for a in answers if a.returncode != 0]
        assert refused, "the disk never filled"
        assert all("event log could not be written" in a.stdout + a.stderr for a in refused)
        accepted = {json.loads(a.stdout)["chore_id"] for a in answers if a.returncode == 0}

        logged = {e["chore_id"] for e in crew.events() if e["type"] == "ChoreRequested"}
        assert logged == accepted | {first}
        assert set(crew.chores()) <= logged
        check = crew.cli("--check-log", "--data", str(crew.captain_data))
        assert check.returncode == 0, check.stdout

        filler.unlink()
        again = crew.submit(script, "service=cpu", user=test_user)
        crew.wait_chore(again, "done")
        assert "rebuilding state from the log" in crew.captain.log()
    finally:
        crew.stop()


def submit_together(crew: Crew, script: Path, user: str,
                    count: int) -> list[subprocess.CompletedProcess[str]]:
    answers: list[subprocess.CompletedProcess[str]] = []

    def one() -> None:
        answers.append(crew.cli("--chore", f"script={script}", "service=cpu", "--json",
                                user=user))
    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


# --- crashes at the worst steps -------------------------------------------------------------


@pytest.mark.parametrize("fault", ["after-write-before-fsync:6", "torn-write:6",
                                   "snapshot-before-rename:1"])
def test_a_crash_at_a_fault_point_loses_nothing_answered(
        scratch: Path, monkeypatch: pytest.MonkeyPatch, fault: str):
    crew = Crew(scratch, ("--snapshot-every", "3"))
    monkeypatch.setenv("CAPTAIN_FAULT", fault)
    crew.start_captain()
    monkeypatch.delenv("CAPTAIN_FAULT")
    try:
        answered = []
        for number in range(1, 12):
            done = crew.cli("--prereg", f"s{number}", f"127.0.1.{number}", "services=cpu")
            if done.returncode != 0:
                break
            answered.append(f"s{number}")
        wait_until(lambda: crew.captain.process.poll() is not None, what="the crash")
        assert crew.captain.process.returncode == FAULT_EXIT_CODE

        crew.captain.kill(signal.SIGKILL)
        crew.restart_captain()
        names = set(crew.cli_json("--crew"))
        assert set(answered) <= names
        logged = [e["name"] for e in crew.events() if e["type"] == "SailorPreregistered"]
        assert len(logged) == len(set(logged))
        if fault.startswith("torn-write"):
            assert "moved it to" in crew.captain.log()
            assert list((crew.captain_data / "log").glob("*.torn-at-*"))
        if fault.startswith("snapshot"):
            assert not snapshots.listed(crew.captain_data / "snapshots") or all(
                snapshots.decode(p.read_bytes()) for _, p in
                snapshots.listed(crew.captain_data / "snapshots"))
        crew.cli_ok("--prereg", "after", "127.0.2.1", "services=cpu")
        assert crew.cli("--check-log", "--data", str(crew.captain_data)).returncode == 0
    finally:
        crew.stop()


def test_encode_line_is_what_the_fixture_holds():
    """The fixture was written by this codec: re-encoding its events gives the same bytes."""
    from eventlog.codec import decode_line

    for line in (FIXTURES / "log-v1" / "events-000000000001.jsonl").read_bytes().splitlines():
        assert encode_line(decode_line(line)) == line + b"\n"
