"""A whole crew list at once: every bad line reported with its number, and then nothing."""

from pathlib import Path

from crew import Crew

GOOD = """\
# the lab's machines
sailor=gpu1 IP=10.0.0.21 services=gpu,cpu   # the big one
sailor=gpu2 IP=10.0.0.22 services=gpu max_time=2-12:00:00

sailor=cpu1 IP=10.0.0.31 services=cpu
"""

BAD = """\
sailor=gpu1 IP=10.0.0.21 services=gpu,cpu
sailor=gpu2 IP=10.0.0.22 services=gpu max_time=2-12x
sailor=gpu1 IP=10.0.0.23
sailor=cpu1 services=cpu
sailor=cpu2 IP=0.0.0.0
sailor=cpu3 IP=10.0.0.33 colour=blue
"""


def write(scratch: Path, name: str, text: str) -> Path:
    path = scratch / name
    path.write_text(text)
    return path


def test_a_good_crew_list_is_preregistered_whole(crew: Crew, scratch: Path):
    crew.cli_ok("--prereg", "--file", str(write(scratch, "crew.txt", GOOD)))

    sailors = crew.cli_json("--crew")
    assert set(sailors) == {"gpu1", "gpu2", "cpu1"}
    assert sailors["gpu1"]["ip"] == "10.0.0.21"
    assert sailors["gpu1"]["services"] == ["gpu", "cpu"]
    assert sailors["gpu2"]["max_time_s"] == 2 * 86400 + 12 * 3600


def test_every_bad_line_is_named_and_nothing_is_preregistered(crew: Crew, scratch: Path):
    path = write(scratch, "crew.txt", BAD)
    before = len(crew.events())

    done = crew.cli("--prereg", "--file", str(path))

    assert done.returncode != 0
    for number in (2, 3, 4, 5, 6):
        assert f"{path}:{number}:" in done.stderr, done.stderr
    assert f"{path}:1:" not in done.stderr
    assert crew.cli_json("--crew") == {}
    assert len(crew.events()) == before


def test_a_line_in_conflict_with_the_crew_is_named_and_nothing_is_added(crew: Crew,
                                                                         scratch: Path):
    crew.cli_ok("--prereg", "cpu1", "10.0.0.99", "services=cpu")
    path = write(scratch, "crew.txt", GOOD)

    done = crew.cli("--prereg", "--file", str(path))

    assert done.returncode != 0
    assert f"{path}:5: sailor 'cpu1' is already in the crew list" in done.stderr, done.stderr
    assert set(crew.cli_json("--crew")) == {"cpu1"}
