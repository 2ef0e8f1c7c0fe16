"""Runs the sailor daemon until it is stopped.

Before anything else the sailor takes its data folder's lock and its listening socket, so a
second sailor on the same folder, a port in use or an address this machine does not have
stops it at once with one line saying why, before it calls the captain.
"""

import errno
import fcntl
import logging
import os
import socket
import sys
from pathlib import Path

from aiohttp import web

from sailor.daemon import Sailor, SailorSettings
from sailor.http_api import make_app
from sailor.resources import SavedResources

log = logging.getLogger(__name__)

LOCK_FILE = "sailor.lock"


class ServeRefused(Exception):
    """The sailor cannot serve; the message says why in one line."""


def serve(settings: SailorSettings, resources: SavedResources) -> int:
    hold_data_folder(settings.data_dir)
    listener = listen(settings.host, settings.port)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    sailor = Sailor(settings, resources)
    log.info("sailor: serving on %s:%d for the captain at %s, data in %s", settings.host,
             settings.port, resources.captain, settings.data_dir)
    web.run_app(make_app(sailor), sock=listener, print=None, access_log=None)
    return 0


def hold_data_folder(data_dir: Path) -> int:
    """Locks the data folder for the life of this process and writes our pid in the lock
    file; returns the lock's descriptor. The lock goes with the process, even when killed,
    and the chores' keepers do not inherit it."""
    path = data_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ServeRefused(f"cannot use the data folder {data_dir}: cannot open {path}: "
                           f"{exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        by = f" (pid {holder})" if holder.isdigit() else ""
        raise ServeRefused(f"another sailor already serves from {data_dir}{by}; stop it, "
                           "or give this one a data folder of its own with --data") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def listen(host: str, port: int) -> socket.socket:
    """The sailor's listening socket, or ServeRefused saying why there is none."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    try:
        return socket.create_server((host, port), family=family, backlog=128)
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
