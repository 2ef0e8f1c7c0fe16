"""The sailor's endpoints: orders from its captain, and nobody else."""

import logging
import re
from typing import TypeVar

import msgspec
from aiohttp import web

from captain.identity import connection_uid
from captain.openapi import document_bytes
from common import messages as msg
from common import signing
from sailor.daemon import Sailor

log = logging.getLogger(__name__)

SAILOR_KEY = web.AppKey("sailor", Sailor)
MAX_BODY_BYTES = 64 * 1024
T = TypeVar("T", bound=msgspec.Struct)
_FIELD_AT = re.compile(r"at `\$\.([A-Za-z_]+)")


class Refused(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status,
                        content_type="application/json")


async def from_captain(request: web.Request) -> Sailor:
    """The sailor, once the request is known to come from its captain, signed."""
    sailor = request.app[SAILOR_KEY]
    if request.remote != sailor.captain_host:
        log.warning("sailor: refused an order from %s (not the captain)", request.remote)
        raise Refused(403, f"address {request.remote} is not this sailor's captain")
    try:
        await signing.check_request(
            request, sailor.cluster_key,
            unsigned_allowed=lambda: connection_uid(request.transport) == 0)
    except signing.SignatureRefused as exc:
        log.warning("sailor: refused an order from %s to %s: %s", request.remote,
                    request.path, exc)
        raise Refused(401, str(exc)) from None
    return sailor


async def decode(request: web.Request, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(await request.read(), type=kind)
    except msgspec.ValidationError as exc:
        match = _FIELD_AT.search(str(exc))
        raise Refused(400, f"invalid request: {exc}", match.group(1) if match else None) from None
    except msgspec.DecodeError as exc:
        raise Refused(400, f"the body is not valid JSON: {exc}") from None


@web.middleware
async def errors_as_json(request: web.Request, handler) -> web.StreamResponse:  # type: ignore[no-untyped-def]
    try:
        return await handler(request)
    except Refused as refused:
        body = {"error": refused.message}
        if refused.field:
            body["field"] = refused.field
        return json_response(body, refused.status)
    except web.HTTPRequestEntityTooLarge:
        return json_response({"error": f"body larger than {MAX_BODY_BYTES} bytes"}, 413)


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
