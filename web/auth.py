"""Web logins: passwords checked by PAM off the event loop, sessions kept in a cookie.

A browser is never identified by the kernel: the socket of a browser on the captain machine
belongs to whoever runs the browser, and any web site that browser visits could make it
call the captain. So a request that looks like a browser's (it carries an `Origin` or
`Sec-Fetch-*` header, or a session cookie) is identified by its web session alone, and a
state-changing one also needs the session's CSRF token in the `X-CSRF-Token` header.

Sessions live in the captain's memory: a restarted captain forgets them, and everyone logs
in again.
"""

import asyncio
import hmac
import ipaddress
import logging
import os
import pwd
import secrets
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import msgspec
from aiohttp import web

from captain.chores import Caller
from common.clock import CLOCK, Clock
from common.refusals import Refusal, forbidden

log = logging.getLogger(__name__)

SESSION_COOKIE = "captain_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_LIFETIME_S = 8 * 3600
FAILED_LOGINS_ALLOWED = 5
FAILED_LOGINS_WINDOW_S = 600.0
# A failed login always takes at least this long, so its timing tells nothing of whether
# the user exists.
FAILED_LOGIN_MIN_S = 2.0
PAM_SERVICE = "login"
LOGIN_FAILED = "wrong user name or password"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BROWSER_HEADERS = ("Origin", "Sec-Fetch-Site", "Sec-Fetch-Mode")
# At most this many PAM checks at once; a failing one holds its thread for seconds.
_PAM_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pam")


class Session(msgspec.Struct, kw_only=True):
    token: str
    uid: int
    name: str
    csrf: str
    expires_mono: float
    expires_at: float

    @property
    def is_admin(self) -> bool:
        return self.uid == 0

    def public(self) -> dict[str, object]:
        """What the page may know of its own session (the token stays in the cookie)."""
        return {"user": self.name, "uid": self.uid, "admin": self.is_admin,
                "csrf": self.csrf, "expires_at": int(self.expires_at)}


class Sessions:
    """Open web sessions and recent failed logins per address, in memory.

    The limit on failed logins counts per address only: a guesser spread over many addresses
    is slowed by PAM's delay and the few PAM threads alone.
    """

    def __init__(self, clock: Clock = CLOCK, lifetime_s: float = SESSION_LIFETIME_S) -> None:
        self.clock = clock
        self.lifetime_s = lifetime_s
        self._by_token: dict[str, Session] = {}
        self._failures: dict[str, deque[float]] = {}

    def open(self, uid: int, name: str) -> Session:
        self._drop_expired()
        session = Session(
            token=secrets.token_urlsafe(32), uid=uid, name=name,
            csrf=secrets.token_urlsafe(32),
            expires_mono=self.clock.monotonic() + self.lifetime_s,
            expires_at=self.clock.wall() + self.lifetime_s,
        )
        self._by_token[session.token] = session
        return session

    def find(self, token: str | None) -> Session | None:
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None:
            return None
        if session.expires_mono <= self.clock.monotonic():
            del self._by_token[token]
            return None
        return session

    def close(self, token: str | None) -> None:
        if token:
            self._by_token.pop(token, None)

    def _drop_expired(self) -> None:
        now = self.clock.monotonic()
        for token in [t for t, s in self._by_token.items() if s.expires_mono <= now]:
            del self._by_token[token]

    # --- failed logins ----------------------------------------------------------------------

    def blocked_for_s(self, ip: str) -> float:
        """Seconds until this address may try again; 0 when it may now."""
        recent = self._recent_failures(ip)
        if len(recent) < FAILED_LOGINS_ALLOWED:
            return 0.0
        return max(0.0, recent[0] + FAILED_LOGINS_WINDOW_S - self.clock.monotonic())

    def note_attempt(self, ip: str) -> float:
        """Counts an attempt as failed until it succeeds; returns its mark for `succeeded`."""
        mark = self.clock.monotonic()
        if len(self._failures) > 10_000:
            for stale in [a for a in self._failures if not self._recent_failures(a)]:
                del self._failures[stale]
        self._failures.setdefault(ip, deque()).append(mark)
        return mark

    def succeeded(self, ip: str, mark: float) -> None:
        recent = self._failures.get(ip)
        if recent is not None and mark in recent:
            recent.remove(mark)

    def _recent_failures(self, ip: str) -> deque[float]:
        recent = self._failures.get(ip, deque())
        horizon = self.clock.monotonic() - FAILED_LOGINS_WINDOW_S
        while recent and recent[0] <= horizon:
            recent.popleft()
        return recent


SESSIONS_KEY = web.AppKey("sessions", Sessions)


# --- who is calling -------------------------------------------------------------------------


def is_browser_request(request: web.Request) -> bool:
    if SESSION_COOKIE in request.cookies:
        return True
    return any(header in request.headers for header in _BROWSER_HEADERS)


def session_of(request: web.Request) -> Session | None:
    sessions = request.app.get(SESSIONS_KEY)
    if sessions is None:
        return None
    return sessions.find(request.cookies.get(SESSION_COOKIE))


def web_caller(request: web.Request) -> Caller:
    """The logged-in user of a browser's request; refuses one without a valid session."""
    session = session_of(request)
    if session is None:
        raise Refusal(401, "log in first (no session, or it has expired)")
    if request.method not in SAFE_METHODS:
        token = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(token.encode(), session.csrf.encode()):
            raise forbidden(f"this request needs the session's CSRF token in {CSRF_HEADER} "
                            "(reload the page)")
    return Caller(uid=session.uid, name=session.name)


def login_refusal(request: web.Request) -> str | None:
    """Why a login must not be taken over this connection, or None when it may.

    The address is the connection's: behind a reverse proxy it is the proxy's, so a proxy on
    the captain machine makes every plain HTTP login look local (and shares one failed-login
    limit among all its clients).
    """
    if request.secure or is_loopback(request.remote or ""):
        return None
    return ("logins over plain HTTP are taken from the captain machine only, so that "
            "passwords never cross the network in clear; open the dashboard over HTTPS "
            "(the captain serves it when started with --tls-cert and --tls-key)")


def is_loopback(ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


# --- PAM ------------------------------------------------------------------------------------


def _pam_says_yes(user: str, password: str) -> bool:
    import pam  # type: ignore[import-untyped]

    authenticator = pam.PamAuthenticator()
    try:
        return bool(authenticator.authenticate(user, password, service=PAM_SERVICE))
    except ValueError:
        return False


async def check_password(user: str, password: str, clock: Clock = CLOCK) -> Caller | None:
    """The account when PAM accepts this password, else None, after the same delay."""
    started = clock.monotonic()
    loop = asyncio.get_running_loop()
    accepted = False
    if user and password and "\0" not in user + password:
        accepted = await loop.run_in_executor(_PAM_THREADS, _pam_says_yes, user, password)
    account = None
    if accepted:
        try:
            entry = pwd.getpwnam(user)
            account = Caller(uid=entry.pw_uid, name=entry.pw_name)
        except KeyError:
            log.warning("web: PAM accepted user=%s but the account database has no such user",
                        user)
    if account is None:
        await asyncio.sleep(max(0.0, started + FAILED_LOGIN_MIN_S - clock.monotonic()))
    return account


def pam_rights_problem() -> str | None:
    """Why web logins would fail on this machine as the captain runs now, or None."""
    try:
        import pam  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return "python-pam is not installed, so nobody can log in to the dashboard"
    if not any(os.path.exists(f"/etc/pam.d/{name}") for name in (PAM_SERVICE, "other")):
        return f"PAM has no '{PAM_SERVICE}' service on this machine, so web logins will fail"
    if os.geteuid() != 0 and not os.access("/etc/shadow", os.R_OK):
        return ("the captain runs without root and cannot read /etc/shadow, so PAM can check "
                "at most its own account's password: web logins of other users will fail "
                "(run the captain as root, or in the shadow group)")
    return None
