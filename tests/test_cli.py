"""The `captain` command as scripts and pipes meet it, against a real captain: failures under
--json, tables into a pipe, words and options a command does not take, the watch's lines."""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from crew import CAPTAIN, Crew, free_port, write_script


def run(*args: str, user: str | None = None, env: dict[str, str] | None = None,
        timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    argv = [CAPTAIN, *args]
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def json_failure(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The one JSON object a failed --json command printed; its readable line is on stderr."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip(), "no readable line on stderr"
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    answer = json.loads(lines[0])
    assert isinstance(answer, dict) and answer["error"], answer
    return answer


# --- every failure under --json is a JSON object --------------------------------------------

@pytest.mark.parametrize(("words", "field"), [
    (("--consult", "--at", "yesterday-ish"), "at"),
    (("--history", "abc"), "chore"),
    (("--prereg", "s9"), None),
    (("--user-set", "uid=abc"), "uid"),
    (("--watch", "chore=abc"), "chore"),
    (("--chore", "script=/bin/true", "service=cpu", "colour=red"), "colour"),
    (("--chore", "script=/bin/true", "service=cpu", "cpus=many"), "cpus"),
    (("--crew", "--no-such-option"), None),
    (("--crew", "--limit", "0"), "limit"),
    (("--crew", "extra", "words"), None),
    (("--cancel", "99"), "chore_id"),
])
def test_a_failure_under_json_is_a_json_object(crew: Crew, words: tuple[str, ...],
                                               field: str | None):
    answer = json_failure(crew.cli(*words, "--json"))
    assert answer.get("field") == field, answer


def test_no_captain_under_json_is_a_json_object():
    closed = str(free_port())
    for words in (("--crew",), ("--consult",), ("--chore", "script=/bin/true", "service=cpu")):
        answer = json_failure(run(*words, "--port", closed, "--json"))
        assert "cannot reach the captain" in answer["error"], words


def test_show_key_under_json(crew: Crew):
    key = run("--show-key", "--data", str(crew.captain_data)).stdout.strip()
    shown = json.loads(run("--show-key", "--data", str(crew.captain_data), "--json").stdout)
    assert key and shown == {"cluster_key": key}


# --- tables into a pipe ---------------------------------------------------------------------

def test_tables_in_a_pipe_keep_every_cell_whole(crew: Crew, boat: Path, test_user: str):
    crew.add_sailor("s1", "127.0.0.2")
    crew.cli_ok("--sailor-set", "name=s1", "max_time=1-00:00:00")
    folder = boat / "experiments-with-a-rather-long-folder-name" / "and-one-more-level"
    folder.mkdir(parents=True)
    script = write_script(folder, "train.sh", "exit 0\n", owner=test_user)
    chore_id = crew.submit(script, "service=cpu", user=test_user)
    crew.wait_chore(chore_id, "done")
    narrow = {"COLUMNS": "80"}  # what rich assumes when stdout is not a terminal

    consult = run("--consult", "--port", str(crew.port), user=test_user, env=narrow).stdout
    rows = [line for line in consult.splitlines() if "train" in line]
    assert len(rows) == 1 and str(script) in rows[0] and chore_id in rows[0], consult

    table = run("--crew", "--port", str(crew.port), env=narrow).stdout
    header = next(line for line in table.splitlines() if "sailor" in line)
    assert "max time" in header and "cpus used" in header, table
    row = next(line for line in table.splitlines() if " s1 " in line)
    assert "127.0.0.2" in row and "01-00:00:00" in row, table


# --- what a command does not take is refused ------------------------------------------------

@pytest.mark.parametrize(("words", "said"), [
    (("--crew", "extra", "words"), "extra words"),
    (("--users", "x=1"), "x=1"),
    (("--consult", "mine"), "mine"),
    (("--history", "1", "--limit", "5"), "--limit"),
    (("--crew", "--limit", "5"), "--limit"),
    (("--crew", "--all"), "--all"),
    (("--chore", "script=/bin/true", "service=cpu", "vram=8G"), "vram= needs gpus=N"),
    (("--prereg", "s9", "0.0.0.0"), "0.0.0.0"),
    (("--prereg", "s9", "224.0.0.1"), "multicast"),
    (("--sailor-set", "name=s9", "ip=255.255.255.255"), "broadcast"),
])
def test_words_a_command_does_not_take_are_refused(crew: Crew, words: tuple[str, ...],
                                                   said: str):
    before = len(crew.events())
    done = crew.cli(*words)
    assert done.returncode != 0 and said in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert len(crew.events()) == before


def test_the_usage_error_lists_every_command(crew: Crew):
    done = crew.cli("--crew", "--users")
    assert done.returncode == 2
    for command in ("--serve", "--chore", "--consult", "--cancel", "--prereg", "--crew",
                    "--sailor-set", "--sailor-remove", "--users", "--user-set", "--watch",
                    "--history", "--check-log", "--show-key"):
        assert command in done.stderr, command


def test_show_key_by_a_user_says_root_only(crew: Crew, test_user: str):
    done = run("--show-key", "--data", str(crew.captain_data), user=test_user)
    assert done.returncode != 0
    assert "only root may show the cluster key" in done.stderr, done.stderr
    assert "not readable" not in done.stderr


# --- the watch ------------------------------------------------------------------------------

def test_watching_a_chore_prints_compact_lines_and_ends_with_it(crew: Crew, boat: Path,
                                                                test_user: str):
    crew.add_sailor("s1", "127.0.0.2")
    script = write_script(boat, "slow.sh", "sleep 2\nexit 0\n", owner=test_user)
    watch = subprocess.Popen([CAPTAIN, "--watch", "chore=1", "--port", str(crew.port), "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL)
    try:
        assert crew.submit(script, "service=cpu", user=test_user) == "1"
        out, err = watch.communicate(timeout=30)
    finally:
        watch.kill()
        watch.wait()

    assert watch.returncode == 0, err
    lines = out.splitlines()
    events = [json.loads(line) for line in lines]
    assert events and events[-1]["type"] == "ChoreEnded" and events[-1]["chore_id"] == "1"
    assert all(line == json.dumps(event, separators=(",", ":"))
               for line, event in zip(lines, events, strict=True))
