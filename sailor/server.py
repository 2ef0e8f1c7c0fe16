"""Runs the sailor daemon until it is stopped."""

import logging
import sys

from aiohttp import web

from sailor.daemon import Sailor, SailorSettings
from sailor.http_api import make_app
from sailor.resources import SavedResources

log = logging.getLogger(__name__)


def serve(settings: SailorSettings, resources: SavedResources) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    sailor = Sailor(settings, resources)
    log.info("sailor: serving on %s:%d for the captain at %s, data in %s", settings.host,
             settings.port, resources.captain, settings.data_dir)
    web.run_app(make_app(sailor), host=settings.host, port=settings.port, print=None,
                access_log=None)
    return 0
