"""JSON over HTTP for both daemons: answers, bodies decoded into their types, refusals.

Servers only: it imports aiohttp, which the CLI never loads.
"""

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from common.refusals import Refusal, bad_request

MAX_BODY_BYTES = 64 * 1024
T = TypeVar("T", bound=msgspec.Struct)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_FIELD_AT = re.compile(r"at `\$\.([A-Za-z_]+)")


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status,
                        content_type="application/json")


async def decode(request: web.Request, kind: type[T]) -> T:
    """The body as `kind`; an empty body reads as {}. A bad one is refused naming the field."""
    data = await request.read()
    if not data.strip():
        data = b"{}"
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as exc:
        match = _FIELD_AT.search(str(exc))
        raise bad_request(f"invalid request: {exc}", match.group(1) if match else None) from None
    except msgspec.DecodeError as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Refusal as refusal:
        return json_response(refusal.body(), refusal.status)
    except web.HTTPRequestEntityTooLarge:
        return json_response({"error": f"body larger than {MAX_BODY_BYTES} bytes"}, 413)
