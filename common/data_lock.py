"""One daemon per data folder: an exclusive lock held for the daemon's whole life.

Two captains (or two sailors) sharing a folder would both append to one log or registry and
hand out the same ids; the second one to start is refused instead.
"""

import fcntl
import os
from pathlib import Path
from typing import IO


class FolderBusy(Exception):
    """Another daemon holds this data folder."""


def hold_data_folder(folder: Path, daemon: str) -> IO[str]:
    """Locks the folder for this process (made 0700 if new); keep the returned file open."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(folder / f"{daemon}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    lock = os.fdopen(fd, "r+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise FolderBusy(f"{folder} is already used by another {daemon} (pid {holder}); stop "
                         f"it first, or give this one another --data folder") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock
