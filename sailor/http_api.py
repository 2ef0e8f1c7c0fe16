"""The sailor's endpoints: orders from its captain, and nobody else."""

import logging

from aiohttp import web

from captain.openapi import document_bytes
from common import messages as msg
from common import signing
from common.identity import connection_uid
from common.json_http import MAX_BODY_BYTES, decode, errors_as_json, json_response
from common.refusals import Refusal
from sailor.daemon import Sailor

log = logging.getLogger(__name__)

SAILOR_KEY = web.AppKey("sailor", Sailor)


async def from_captain(request: web.Request) -> Sailor:
    """The sailor, once the request is known to come from its captain, signed."""
    sailor = request.app[SAILOR_KEY]
    if request.remote != sailor.captain_host:
        log.warning("sailor: refused an order from %s (not the captain)", request.remote)
        raise Refusal(403, f"address {request.remote} is not this sailor's captain")
    try:
        await signing.check_request(
            request, sailor.cluster_key,
            unsigned_allowed=lambda: connection_uid(request.transport) == 0)
    except signing.SignatureRefused as exc:
        log.warning("sailor: refused an order from %s to %s: %s", request.remote,
                    request.path, exc)
        raise Refusal(401, str(exc)) from None
    return sailor


async def captain_request(request: web.Request) -> web.Response:
    sailor = await from_captain(request)
    order = await decode(request, msg.ChoreOrder)
    return json_response(await sailor.take_order(order))


async def captain_cancels(request: web.Request) -> web.Response:
    sailor = await from_captain(request)
    order = await decode(request, msg.CancelOrder)
    return json_response(msg.CancelAnswer(known=sailor.cancel(order)))


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI document of the sailor's endpoints."""
    return web.Response(body=document_bytes("sailor"), content_type="application/json")


def make_app(sailor: Sailor) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[errors_as_json])
    app[SAILOR_KEY] = sailor
    app.router.add_post("/captain_request", captain_request)
    app.router.add_post("/captain_cancels", captain_cancels)
    app.router.add_get("/openapi.json", openapi)

    async def on_startup(app: web.Application) -> None:
        await sailor.start()

    async def on_cleanup(app: web.Application) -> None:
        await sailor.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
