"""The dashboard's routes: the page and its files, and the login endpoints.

`/` is the page and `/front/...` its files, served as they are committed (no build step).
`POST /login` checks a user and password with PAM and opens a session in a cookie;
`POST /logout` closes it; `GET /session` tells the page who is logged in and whether a
login may be taken over this connection. `GET /web/crew` is the crew view for the page, which
anyone who can open the dashboard may read: it names no user and no script.
"""

import logging
import math
from pathlib import Path
from typing import Annotated

import msgspec
from aiohttp import web

from captain.core import Captain
from common.json_http import json_response
from common.refusals import Refusal, bad_request, forbidden
from projections.views import crew_view
from web import auth

log = logging.getLogger(__name__)

FRONT_DIR = Path(__file__).resolve().parent / "front"
HTTPS_PORT_KEY = web.AppKey("https_port", int)
# The page loads nothing from elsewhere, and may not be framed by another site.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


class LoginRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    user: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


def add_web_routes(app: web.Application, captain: Captain) -> None:
    settings = captain.settings
    app[auth.SESSIONS_KEY] = auth.Sessions(captain.clock)
    app[HTTPS_PORT_KEY] = (settings.web_port or 0) if settings.tls_cert else 0
    app.router.add_get("/", index)
    app.router.add_static("/front/", FRONT_DIR)

    async def crew_for_the_page(request: web.Request) -> web.Response:
        return json_response(crew_view(captain.state, captain.last_seen_wall))

    app.router.add_get("/web/crew", crew_for_the_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/session", session_info)
    app.on_response_prepare.append(_security_headers)
    app.on_startup.append(_warn_when_pam_cannot_work)


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(FRONT_DIR / "index.html")


async def login(request: web.Request) -> web.Response:
    sessions = request.app[auth.SESSIONS_KEY]
    ip = request.remote or ""
    refusal = auth.login_refusal(request)
    if refusal is not None:
        raise forbidden(refusal)
    try:
        body = msgspec.json.decode(await request.read(), type=LoginRequest)
    except msgspec.ValidationError as exc:
        raise bad_request(f"invalid login: {exc}", "user" if "user" in str(exc)
                          else "password") from None
    except msgspec.DecodeError:
        raise bad_request("the body is not valid JSON") from None

    # Checked and counted with no wait in between, so attempts sent at once count too.
    wait_s = sessions.blocked_for_s(ip)
    if wait_s > 0:
        raise Refusal(429, f"too many failed logins from {ip}; try again in "
                           f"{math.ceil(wait_s)} s")
    mark = sessions.note_attempt(ip)
    account = await auth.check_password(body.user, body.password)
    if account is None:
        log.warning("web: failed login for user=%s from ip=%s", body.user[:64], ip)
        raise Refusal(401, auth.LOGIN_FAILED)
    sessions.succeeded(ip, mark)

    session = sessions.open(account.uid, account.name)
    log.info("web: user=%s (%d) logged in from ip=%s", account.name, account.uid, ip)
    response = json_response({"session": session.public()})
    response.set_cookie(auth.SESSION_COOKIE, session.token, max_age=int(sessions.lifetime_s),
                        path="/", httponly=True, samesite="Strict", secure=request.secure)
    return response


async def logout(request: web.Request) -> web.Response:
    session = auth.session_of(request)
    if session is not None:
        auth.web_caller(request)
        request.app[auth.SESSIONS_KEY].close(session.token)
        log.info("web: user=%s logged out", session.name)
    response = json_response({"session": None})
    response.del_cookie(auth.SESSION_COOKIE, path="/")
    return response


async def session_info(request: web.Request) -> web.Response:
    session = auth.session_of(request)
    return json_response({
        "session": session.public() if session is not None else None,
        "login_refusal": auth.login_refusal(request),
        "https_port": request.app[HTTPS_PORT_KEY] or None,
    })


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.path == "/" or request.path.startswith("/front/"):
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cache-Control"] = "no-cache"


async def _warn_when_pam_cannot_work(app: web.Application) -> None:
    problem = auth.pam_rights_problem()
    if problem is not None:
        log.warning("web: %s", problem)
