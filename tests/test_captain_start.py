"""A captain that cannot start says why in one line, and touches nothing."""

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
