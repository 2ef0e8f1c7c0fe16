"""Where this machine's captain listens, published for the CLI of every user.

A captain started as root writes `/run/captain/captain.json` (readable by everyone; the
path can be moved with CAPTAIN_RUNTIME_FILE), so that `captain --consult` finds it without
`--port`. It removes the file when it stops, if the file is still its own.
"""

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_PATH = Path("/run/captain/captain.json")


def runtime_path() -> Path:
    return Path(os.environ.get("CAPTAIN_RUNTIME_FILE") or DEFAULT_PATH)


def publish(host: str, port: int) -> Path | None:
    """Writes the file when running as root; returns its path, or None when not written."""
    if os.geteuid() != 0:
        return None
    path = runtime_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        temp = path.with_name(f".{path.name}.{os.getpid()}")
        temp.write_text(json.dumps({"host": host, "port": port, "pid": os.getpid()}))
        temp.chmod(0o644)
        os.replace(temp, path)
    except OSError as exc:
        log.warning("captain: could not publish the port in %s: %s", path, exc)
        return None
    return path


def withdraw(path: Path | None) -> None:
    if path is None:
        return
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass
