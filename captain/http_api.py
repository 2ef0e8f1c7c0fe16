"""The captain's endpoints: thin handlers that decode, identify the caller, and answer JSON.

Client endpoints know the caller from the kernel (the owner of the connecting socket);
sailor endpoints know the sailor from its address in the crew list.
"""

import logging
import pwd
import weakref

from aiohttp import web

from captain import chores, crew, event_stream, history, users
from captain.chores import Caller
from captain.core import Captain
from captain.openapi import document_bytes
from common import messages as msg
from common import signing
from common.identity import connection_uid, local_peer_uid
from common.json_http import MAX_BODY_BYTES, Handler, decode, errors_as_json, json_response
from common.refusals import Refusal, forbidden
from eventlog.store import WriteFailed
from projections.views import chore_view, chores_view, crew_view, user_view, users_view
from web import auth as web_auth
from web.routes import add_web_routes

log = logging.getLogger(__name__)

CAPTAIN_KEY = web.AppKey("captain", Captain)

# The owner of a connection's client socket cannot change while the connection is open, so the
# kernel is asked once per connection, however many requests a kept-open one carries.
_CALLERS: "weakref.WeakKeyDictionary[object, Caller]" = weakref.WeakKeyDictionary()


def captain_of(request: web.Request) -> Captain:
    return request.app[CAPTAIN_KEY]


def caller_of(request: web.Request) -> Caller:
    """The local user behind this connection, as the kernel records it.

    A browser's request is the exception: it is known by its web login alone (see web.auth).
    """
    if web_auth.is_browser_request(request):
        return web_auth.web_caller(request)
    transport = request.transport
    known = _CALLERS.get(transport) if transport is not None else None
    if known is not None:
        return known
    peer = transport.get_extra_info("peername") if transport else None
    server = transport.get_extra_info("sockname") if transport else None
    uid = local_peer_uid(peer[:2], server[:2]) if peer and server else None
    if uid is None:
        raise forbidden("this endpoint answers users of the captain machine only")
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    caller = _CALLERS[transport] = Caller(uid=uid, name=name)
    return caller


def peer_ip(request: web.Request) -> str:
    return request.remote or ""


@web.middleware
async def write_failures_as_json(request: web.Request, handler: Handler
                                 ) -> web.StreamResponse:
    try:
        return await handler(request)
    except WriteFailed as exc:
        return json_response({"error": str(exc)}, 503)


# --- user endpoints -------------------------------------------------------------------------


async def user_chore(request: web.Request) -> web.Response:
    captain = captain_of(request)
    caller = caller_of(request)
    body = await decode(request, msg.ChoreRequest)
    chore, durable = chores.request_chore(captain, caller, body)
    await durable
    return json_response(chore_view(chore), 201)


async def user_consult(request: web.Request) -> web.Response:
    captain = captain_of(request)
    caller = caller_of(request)
    if request.method == "POST":
        body = await decode(request, msg.ConsultRequest)
        everyone = body.all
    else:
        everyone = request.query.get("all", "") in ("1", "true", "yes")
    if everyone and not caller.is_admin:
        raise forbidden("only root may consult every user's chores (--all)")
    state = await history.past_state(request) or captain.state
    return json_response(chores_view(state, None if everyone else caller.uid))


async def user_cancel(request: web.Request) -> web.Response:
    captain = captain_of(request)
    caller = caller_of(request)
    body = await decode(request, msg.CancelRequest)
    chore, durable = chores.cancel_chore(captain, caller, body.chore_id)
    await durable
    return json_response(chore_view(chore))


async def crew_list(request: web.Request) -> web.Response:
    captain = captain_of(request)
    caller_of(request)
    past = await history.past_state(request)
    if past is not None:
        return json_response(crew_view(past, {}))
    return json_response(crew_view(captain.state, captain.last_seen_wall))


async def crew_prereg(request: web.Request) -> web.Response:
    captain = captain_of(request)
    caller = caller_of(request)
    body = await decode(request, msg.PreregRequest)
    await crew.prereg(captain, caller, body)
    sailor = captain.state.sailors[body.name]
    return json_response(crew_view(captain.state, captain.last_seen_wall)[sailor.name], 201)


async def crew_prereg_list(request: web.Request) -> web.Response:
    captain = captain_of(request)
    caller = caller_of(request)
    body = await decode(request, msg.CrewListRequest)
    await crew.prereg_crew(captain, caller, body)
    view = crew_view(captain.state, captain.last_seen_wall)
    return json_response({s.name: view[s.name] for s in body.sailors}, 201)


async def crew_sailor_set(request: web.Request) -> web.Response:
    captain = captain_of(request)
    caller = caller_of(request)
    body = await decode(request, msg.SailorSetRequest)
    await crew.sailor_set(captain, caller, body)
    return json_response(crew_view(captain.state, captain.last_seen_wall)[body.name])


async def crew_sailor_remove(request: web.Request) -> web.Response:
    captain = captain_of(request)
    caller = caller_of(request)
    body = await decode(request, msg.SailorRemoveRequest)
    await crew.sailor_remove(captain, caller, body)
    return json_response({"removed": body.name})


async def users_list(request: web.Request) -> web.Response:
    captain = captain_of(request)
    caller_of(request)
    return json_response(users_view(captain.state))


async def user_upsert(request: web.Request) -> web.Response:
    captain = captain_of(request)
    caller = caller_of(request)
    body = await decode(request, msg.UserUpsertRequest)
    await users.upsert(captain, caller, body)
    return json_response(user_view(captain.state.users[str(body.uid)]))


# --- sailor endpoints -----------------------------------------------------------------------


async def check_sailor_call(request: web.Request) -> None:
    """A sailor call comes from an address of the crew list, signed with the cluster key."""
    captain = captain_of(request)
    ip = peer_ip(request)
    crew.sailor_calling(captain, ip)
    try:
        await signing.check_request(
            request, captain.cluster_key,
            unsigned_allowed=lambda: connection_uid(request.transport) == chores.ROOT_UID)
    except signing.SignatureRefused as exc:
        log.warning("captain: refused a sailor call from %s to %s: %s", ip, request.path, exc)
        raise Refusal(401, str(exc)) from None


async def sailor_register(request: web.Request) -> web.Response:
    captain = captain_of(request)
    await check_sailor_call(request)
    body = await decode(request, msg.SailorRegisterRequest)
    answer, durable = crew.register(captain, peer_ip(request), body)
    await durable
    return json_response(answer)


async def sailor_awake(request: web.Request) -> web.Response:
    captain = captain_of(request)
    await check_sailor_call(request)
    body = await decode(request, msg.SailorAwakeRequest)
    return json_response(crew.awake(captain, peer_ip(request), body))


async def sailor_report(request: web.Request) -> web.Response:
    captain = captain_of(request)
    await check_sailor_call(request)
    body = await decode(request, msg.SailorReportRequest)
    answer, durable = crew.report(captain, peer_ip(request), body)
    await durable
    return json_response(answer)


async def health(request: web.Request) -> web.Response:
    return json_response({"ok": True})


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI document describing every endpoint, made from the message types."""
    return web.Response(body=document_bytes(), content_type="application/json")


def make_app(captain: Captain) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES,
                          middlewares=[errors_as_json, write_failures_as_json])
    app[CAPTAIN_KEY] = captain
    app.router.add_post("/user_chore", user_chore)
    app.router.add_get("/user_consult", user_consult)
    app.router.add_post("/user_consult", user_consult)
    app.router.add_post("/user_cancel", user_cancel)
    app.router.add_get("/crew", crew_list)
    app.router.add_post("/prereg", crew_prereg)
    app.router.add_post("/prereg_crew", crew_prereg_list)
    app.router.add_post("/sailor_set", crew_sailor_set)
    app.router.add_post("/sailor_remove", crew_sailor_remove)
    app.router.add_get("/users", users_list)
    app.router.add_post("/user_upsert", user_upsert)
    app.router.add_post("/sailor_register", sailor_register)
    app.router.add_post("/sailor_awake", sailor_awake)
    app.router.add_post("/sailor_report", sailor_report)
    app.router.add_get("/health", health)
    app.router.add_get("/openapi.json", openapi)
    add_web_routes(app, captain)

    async def on_startup(app: web.Application) -> None:
        await captain.start()

    async def on_cleanup(app: web.Application) -> None:
        await captain.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    event_stream.install(app, captain)
    history.install(app)
    return app
