"""What a daemon takes before it starts: its data folder's lock and its listening socket.

Both are taken before anything else, so a second daemon on the same folder (which would
append to the same log or registry and hand out the same ids), a port in use or an address
this machine does not have stop it at once with one line saying why, having changed nothing.
"""

import errno
import fcntl
import os
import socket
from pathlib import Path


class ServeRefused(Exception):
    """The daemon cannot serve; the message says why in one line."""


def hold_data_folder(data_dir: Path, daemon: str) -> int:
    """Locks the data folder (made 0700 if new) for the life of this process, with our pid in
    the lock file; returns the lock's descriptor. The lock goes with the process, even when
    it is killed, and no child inherits it."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = data_dir / f"{daemon}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ServeRefused(f"cannot use the data folder {data_dir}: "
                           f"{exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        by = f" (pid {holder})" if holder.isdigit() else ""
        raise ServeRefused(f"another {daemon} already serves from {data_dir}{by}; stop it, "
                           "or give this one a data folder of its own with --data") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def listen(host: str, port: int) -> socket.socket:
    """The daemon's listening socket, or ServeRefused saying why there is none."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    try:
        return socket.create_server((host, port), family=family, backlog=1024)
    except socket.gaierror as exc:
        raise ServeRefused(f"cannot serve on {where}: unknown host ({exc.strerror})") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            why = "the port is already in use on this address"
        elif exc.errno == errno.EADDRNOTAVAIL:
            why = f"{host} is not an address of this machine"
        else:
            why = exc.strerror or str(exc)
        raise ServeRefused(f"cannot serve on {where}: {why}") from None
