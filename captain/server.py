"""Runs the captain daemon until it is stopped."""

import logging
import sys

from aiohttp import web

from captain.core import Captain
from captain.http_api import make_app
from captain.settings import CaptainSettings
from eventlog.store import LogDamaged

log = logging.getLogger(__name__)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def serve(settings: CaptainSettings) -> int:
    setup_logging()
    captain = Captain(settings)
    log.info("captain: serving on %s:%d, data in %s", settings.host, settings.port,
             settings.data_dir)
    try:
        web.run_app(make_app(captain), host=settings.host, port=settings.port,
                    print=None, access_log=None, handle_signals=True)
    except LogDamaged as exc:
        log.error("captain: cannot start: %s", exc)
        return 2
    return 0
