"""The captain's cluster key: made once, at the first start, in the data folder.

The key file is readable by root only, in a folder only root may enter; the admin shows it
with `captain --show-key` and gives it to each sailor at its first run.
"""

import logging
import os
import stat
import tempfile
from pathlib import Path

from common.signing import new_key, read_key_file

log = logging.getLogger(__name__)

KEY_FILE = "cluster.key"


def key_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def make_private_folder(folder: Path) -> None:
    """Creates the folder for root only, or takes others' access away from an existing one."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & 0o077:
        log.warning("captain: %s was open to other users (mode %o); now 700", folder, mode)
        os.chmod(folder, 0o700)


def load_or_create(data_dir: Path) -> str:
    """The key saved in the data folder; a new one saved there first if there is none."""
    make_private_folder(data_dir)
    path = key_path(data_dir)
    if not path.exists():
        _create(path)
    return read_key_file(path)


def _create(path: Path) -> None:
    """Writes a new key through a side file; never replaces a key that is already there."""
    fd, side = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(new_key() + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(side, path)
            log.info("captain: made a new cluster key in %s (show it with captain --show-key)",
                     path)
        except FileExistsError:
            pass
    finally:
        os.unlink(side)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
