"""Runs the sailor daemon until it is stopped.

Before anything else the sailor takes its data folder's lock and its listening socket, so a
second sailor on the same folder, a port in use or an address this machine does not have
stops it at once with one line saying why, before it calls the captain.
"""

import logging
import sys

from aiohttp import web

from common.serving import hold_data_folder, listen
from sailor.daemon import Sailor, SailorSettings
from sailor.http_api import make_app
from sailor.resources import SavedResources

log = logging.getLogger(__name__)

def serve(settings: SailorSettings, resources: SavedResources) -> int:
    hold_data_folder(settings.data_dir, "sailor")
    listener = listen(settings.host, settings.port)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    sailor = Sailor(settings, resources)
    log.info("sailor: serving on %s:%d for the captain at %s, data in %s", settings.host,
             settings.port, resources.captain, settings.data_dir)
    web.run_app(make_app(sailor), sock=listener, print=None, access_log=None)
    return 0
