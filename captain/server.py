"""Runs the captain daemon until it is stopped."""

import asyncio
import logging
import signal
import ssl
import sys

from aiohttp import web

from captain.core import Captain
from captain.http_api import make_app
from captain.settings import CaptainSettings
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
    log.info("captain: serving on %s:%d, data in %s", settings.host, settings.port,
             settings.data_dir)
    try:
        asyncio.run(_serve_until_stopped(make_app(captain), settings, https))
    except LogDamaged as exc:
        log.error("captain: cannot start: %s", exc)
        return 2
    return 0


async def _serve_until_stopped(app: web.Application, settings: CaptainSettings,
                               https: ssl.SSLContext | None) -> None:
    """Serves plain HTTP on the port, and the same endpoints over HTTPS on the web port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    try:
        await runner.setup()
        await web.TCPSite(runner, settings.host, settings.port).start()
        if https is not None and settings.web_port is not None:
            await web.TCPSite(runner, settings.host, settings.web_port, ssl_context=https).start()
            log.info("captain: dashboard over HTTPS on %s:%d", settings.host, settings.web_port)
        await stopped.wait()
    finally:
        await runner.cleanup()
