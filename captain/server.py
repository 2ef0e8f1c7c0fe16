"""Runs the captain daemon until it is stopped."""

import asyncio
import logging
import os
import signal
import socket
import ssl
import sys

from aiohttp import web

from captain import runtime_file
from captain.core import Captain
from captain.http_api import make_app
from captain.settings import CaptainSettings
from common.serving import ServeRefused, hold_data_folder, listen
from eventlog.store import LogDamaged
from web import tls

log = logging.getLogger(__name__)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def serve(settings: CaptainSettings) -> int:
    setup_logging()
    captain = Captain(settings)
    https = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        try:
            https = tls.server_context(settings.tls_cert, settings.tls_key)
        except (OSError, ssl.SSLError) as exc:
            log.error("captain: cannot start: the TLS certificate %s or key %s cannot be "
                      "used: %s", settings.tls_cert, settings.tls_key, exc)
            return 2
    try:
        lock = hold_data_folder(settings.data_dir, "captain")
        plain = listen(settings.host, settings.port)
        secure = (listen(settings.host, settings.web_port)
                  if https is not None and settings.web_port else None)
    except ServeRefused as exc:
        log.error("captain: cannot start: %s", exc)
        return 2
    try:
        asyncio.run(_serve_until_stopped(make_app(captain), settings, https, plain, secure))
    except LogDamaged as exc:
        log.error("captain: cannot start: %s", exc)
        return 2
    finally:
        os.close(lock)
    return 0


async def _serve_until_stopped(app: web.Application, settings: CaptainSettings,
                               https: ssl.SSLContext | None, plain: socket.socket,
                               secure: socket.socket | None) -> None:
    """Serves plain HTTP on the port, and the same endpoints over HTTPS on the web port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    published = None
    try:
        await runner.setup()
        await web.SockSite(runner, plain).start()
        log.info("captain: serving on %s:%d, data in %s", settings.host, settings.port,
                 settings.data_dir)
        published = runtime_file.publish(settings.host, settings.port)
        if secure is not None and settings.web_port is not None:
            await web.SockSite(runner, secure, ssl_context=https).start()
            log.info("captain: dashboard over HTTPS on %s:%d", settings.host, settings.web_port)
        await stopped.wait()
    finally:
        runtime_file.withdraw(published)
        await runner.cleanup()
