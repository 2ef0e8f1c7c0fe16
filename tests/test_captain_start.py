"""A captain that cannot start says why in one line, and touches nothing."""

import json
import os
import subprocess
from pathlib import Path

from crew import CAPTAIN, Crew, free_port


def start(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CAPTAIN, "--serve", *args], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)


def test_a_second_captain_on_the_same_data_folder_is_refused(crew: Crew):
    before = sorted(p.name for p in (crew.captain_data / "log").iterdir())

    second = start(str(free_port()), "--data", str(crew.captain_data))

    assert second.returncode != 0
    assert "another captain already serves from" in second.stderr
    assert "Traceback" not in second.stderr
    assert sorted(p.name for p in (crew.captain_data / "log").iterdir()) == before
    assert crew.cli("--crew").returncode == 0


def test_a_port_in_use_is_one_line_and_leaves_the_folder_alone(crew: Crew, scratch: Path):
    other = scratch / "other"

    second = start(str(crew.port), "--data", str(other))

    assert second.returncode != 0
    assert f"cannot serve on 127.0.0.1:{crew.port}" in second.stderr
    assert "Traceback" not in second.stderr
    assert not (other / "log").exists()


def test_a_data_folder_that_cannot_be_made_is_named(scratch: Path):
    answer = start(str(free_port()), "--data", "/proc/no-such-folder")

    assert answer.returncode != 0
    assert "/proc/no-such-folder" in answer.stderr
    assert "Traceback" not in answer.stderr


def test_the_cli_finds_the_captain_of_this_machine_without_a_port(crew: Crew, test_user: str):
    """A captain run as root publishes its port; users need not type it."""
    env = {k: v for k, v in os.environ.items() if k != "CAPTAIN_PORT"}
    answer = subprocess.run(["runuser", "-u", test_user, "--", CAPTAIN, "--consult", "--json"],
                            capture_output=True, text=True, timeout=30, env=env)
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout) == {}

    published = json.loads(Path(os.environ["CAPTAIN_RUNTIME_FILE"]).read_text())
    assert published["port"] == crew.port
