import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from crew import Crew, ensure_user, kill_user_processes, world_readable_folder

# Test captains publish their port here, never where a real captain of this machine does.
os.environ.setdefault("CAPTAIN_RUNTIME_FILE", f"/tmp/captain-test-runtime-{os.getpid()}.json")

# Sessions that run suites side by side on one machine give each suite its own users.
_SUFFIX = os.environ.get("CAPTAIN_TEST_USER_SUFFIX", "")
TEST_USER = f"captaintest{_SUFFIX}"
OTHER_USER = f"captainother{_SUFFIX}"


@pytest.fixture
def scratch() -> Iterator[Path]:
    folder = world_readable_folder("captain-test-")
    yield folder
    if not os.environ.get("CAPTAIN_TEST_KEEP"):
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def crew(scratch: Path) -> Iterator[Crew]:
    """A running captain with no sailors yet; tests add the sailors they need."""
    running = Crew(scratch)
    running.start_captain()
    yield running
    running.stop()


@pytest.fixture
def test_user() -> Iterator[str]:
    ensure_user(TEST_USER)
    yield TEST_USER
    kill_user_processes(TEST_USER)


@pytest.fixture
def other_user() -> Iterator[str]:
    ensure_user(OTHER_USER)
    yield OTHER_USER
    kill_user_processes(OTHER_USER)


@pytest.fixture
def boat(scratch: Path, test_user: str) -> Path:
    """The shared disk: a folder owned by the test user."""
    folder = scratch / "boat" / test_user
    folder.mkdir(parents=True)
    shutil.chown(folder, test_user)
    shutil.chown(folder.parent, test_user)
    return folder
