"""Web logins against a real captain: PAM, the session cookie, CSRF, limits and transport."""

import http.client
import json
import socket
import ssl
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest

from common.clock import ManualClock
from crew import TEST_PASSWORD, Crew, free_port
from web import auth


class Answer:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        is_json = headers.get_content_type() == "application/json"
        self.data: Any = json.loads(body) if body and is_json else None
        self.body = body

    def cookie(self) -> Any:
        jar = SimpleCookie()
        for line in self.headers.get_all("Set-Cookie") or []:
            jar.load(line)
        return jar.get(auth.SESSION_COOKIE)


def ask(port: int, method: str, path: str, body: Any = None, *, host: str = "127.0.0.1",
        source: str | None = None, headers: dict[str, str] | None = None,
        tls: ssl.SSLContext | None = None) -> Answer:
    """One HTTP call, from a chosen source address, without any cookie jar of its own."""
    source_address = (source, 0) if source else None
    if tls is not None:
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=30, source_address=source_address, context=tls)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=30,
                                                source_address=source_address)
    payload = None if body is None else json.dumps(body)
    sent = {"Content-Type": "application/json", **(headers or {})}
    try:
        connection.request(method, path, body=payload, headers=sent)
        answer = connection.getresponse()
        return Answer(answer.status, answer.headers, answer.read())
    finally:
        connection.close()


def log_in(port: int, user: str, password: str = TEST_PASSWORD, **where: Any) -> Answer:
    return ask(port, "POST", "/login", {"user": user, "password": password}, **where)


def with_session(answer: Answer, csrf: bool = True) -> dict[str, str]:
    headers = {"Cookie": f"{auth.SESSION_COOKIE}={answer.cookie().value}"}
    if csrf:
        headers[auth.CSRF_HEADER] = answer.data["session"]["csrf"]
    return headers


def outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


# --- logins ---------------------------------------------------------------------------------


def test_login_opens_a_session_in_a_strict_http_only_cookie(crew: Crew, test_user: str):
    answer = log_in(crew.port, test_user)

    assert answer.status == 200, answer.data
    session = answer.data["session"]
    assert session["user"] == test_user and session["admin"] is False and session["csrf"]
    cookie = answer.cookie()
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert int(cookie["max-age"]) == auth.SESSION_LIFETIME_S
    assert not cookie["secure"], "plain HTTP cannot carry a Secure cookie"
    assert "token" not in session and cookie.value not in json.dumps(session)

    mine = ask(crew.port, "GET", "/session", headers=with_session(answer, csrf=False))
    assert mine.data["session"]["user"] == test_user
    # The test runs as root, but a request with a session is the session's user, not root.
    everyone = ask(crew.port, "GET", "/user_consult?all=1",
                   headers=with_session(answer, csrf=False))
    assert everyone.status == 403
    own = ask(crew.port, "GET", "/user_consult", headers=with_session(answer, csrf=False))
    assert own.status == 200 and own.data == {}


def test_wrong_password_and_unknown_user_get_the_same_answer(crew: Crew, test_user: str):
    started = time.monotonic()
    wrong = log_in(crew.port, test_user, "not-the-password")
    unknown = log_in(crew.port, "nosuchuser-captain", "whatever")
    took_s = time.monotonic() - started

    assert wrong.status == unknown.status == 401
    assert wrong.data == unknown.data == {"error": auth.LOGIN_FAILED}
    assert wrong.cookie() is None and unknown.cookie() is None
    assert took_s >= 2 * auth.FAILED_LOGIN_MIN_S - 0.1
    assert crew.captain.process is not None and crew.captain.process.poll() is None


def test_the_captain_answers_others_while_pam_fails_slowly(crew: Crew, test_user: str):
    with ThreadPoolExecutor(max_workers=1) as pool:
        failing = pool.submit(log_in, crew.port, test_user, "not-the-password")
        time.sleep(0.3)
        started = time.monotonic()
        health = ask(crew.port, "GET", "/health")
        assert health.status == 200
        assert time.monotonic() - started < 1.0, "a failing PAM check blocked the captain"
        assert failing.result().status == 401


def test_failed_logins_are_limited_per_address(crew: Crew, test_user: str):
    burst = auth.FAILED_LOGINS_ALLOWED + 3
    with ThreadPoolExecutor(max_workers=burst) as pool:
        answers = list(pool.map(
            lambda _: log_in(crew.port, test_user, "not-the-password", source="127.0.0.5"),
            range(burst)))
    statuses = sorted(a.status for a in answers)
    assert statuses == [401] * auth.FAILED_LOGINS_ALLOWED + [429] * 3, "sent at once, too"

    blocked = log_in(crew.port, test_user, source="127.0.0.5")
    assert blocked.status == 429, "even the right password waits once the limit is reached"
    assert "too many failed logins" in blocked.data["error"]
    assert log_in(crew.port, test_user, source="127.0.0.6").status == 200


# --- what a session may do ------------------------------------------------------------------


def test_state_changing_calls_with_a_session_need_its_csrf_token(crew: Crew, test_user: str):
    session = log_in(crew.port, test_user)
    cancel = {"chore_id": "999"}

    bare = ask(crew.port, "POST", "/user_cancel", cancel, headers=with_session(session, False))
    assert bare.status == 403 and auth.CSRF_HEADER in bare.data["error"]
    forged = ask(crew.port, "POST", "/user_cancel", cancel,
                 headers={**with_session(session, False), auth.CSRF_HEADER: "guess"})
    assert forged.status == 403
    allowed = ask(crew.port, "POST", "/user_cancel", cancel, headers=with_session(session))
    assert allowed.status == 404, "with its token the call reaches the chores, which lack 999"

    no_token_logout = ask(crew.port, "POST", "/logout", headers=with_session(session, False))
    assert no_token_logout.status == 403
    logout = ask(crew.port, "POST", "/logout", headers=with_session(session))
    assert logout.status == 200
    after = ask(crew.port, "GET", "/session", headers=with_session(session, False))
    assert after.data["session"] is None


def test_a_browser_without_a_session_is_not_known_by_its_socket(crew: Crew):
    # The test runs as root: a request carrying a browser's headers must still not be root.
    from_a_page = ask(crew.port, "POST", "/user_cancel", {"chore_id": "1"},
                      headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert from_a_page.status == 401
    consult = ask(crew.port, "GET", "/user_consult?all=1", headers={"Sec-Fetch-Mode": "cors"})
    assert consult.status == 401
    assert ask(crew.port, "GET", "/user_consult?all=1").status == 200, "the CLI path is unchanged"


# --- transport ------------------------------------------------------------------------------


def test_plain_http_logins_are_taken_from_loopback_only(scratch: Path, test_user: str):
    address = outside_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    crew = Crew(scratch, captain_args=("--host", "0.0.0.0"))
    crew.start_captain()
    try:
        refused = log_in(crew.port, test_user, host=address, source=address)
        assert refused.status == 403
        assert "plain HTTP" in refused.data["error"] and "HTTPS" in refused.data["error"]
        assert refused.cookie() is None
        told = ask(crew.port, "GET", "/session", host=address, source=address)
        assert "plain HTTP" in told.data["login_refusal"]
        assert log_in(crew.port, test_user).status == 200
    finally:
        crew.stop()


def test_https_dashboard_with_a_self_signed_pair(scratch: Path, test_user: str):
    cert, key = scratch / "tls" / "captain.crt", scratch / "tls" / "captain.key"
    web_port = free_port()
    crew = Crew(scratch, captain_args=("--host", "0.0.0.0", "--tls-cert", str(cert),
                                       "--tls-key", str(key), "--tls-self-signed",
                                       "--web-port", str(web_port)))
    crew.start_captain()
    try:
        assert cert.exists() and key.stat().st_mode & 0o777 == 0o600
        trust = ssl.create_default_context(cafile=str(cert))
        address = outside_address() or "127.0.0.1"
        host = "127.0.0.1" if address == "127.0.0.1" else address
        trust.check_hostname = host == "127.0.0.1"
        answer = log_in(web_port, test_user, host=host, source=address, tls=trust)
        assert answer.status == 200, answer.data
        cookie = answer.cookie()
        assert cookie["secure"] is True and cookie["httponly"] is True
        page = ask(web_port, "GET", "/", host=host, tls=trust)
        assert page.status == 200 and b"<title>Captain</title>" in page.body
        told = ask(web_port, "GET", "/session", host=host, source=address, tls=trust)
        assert told.data["login_refusal"] is None
        assert crew.cli("--crew").returncode == 0, "the CLI still talks plain HTTP on its port"
    finally:
        crew.stop()


def test_a_captain_without_root_says_web_logins_will_fail(tmp_path: Path):
    import sys

    probe = ("from web.auth import pam_rights_problem; "
             "print(pam_rights_problem() or 'none')")
    done = subprocess.run(["runuser", "-u", "nobody", "--", sys.executable, "-c", probe],
                          capture_output=True, text=True, timeout=30, cwd="/")
    assert done.returncode == 0, done.stderr
    assert "/etc/shadow" in done.stdout
    assert auth.pam_rights_problem() is None, "root has every right PAM needs"


# --- sessions and limits on their own clock -------------------------------------------------


def test_sessions_expire_and_failed_logins_are_forgotten_after_the_window():
    clock = ManualClock()
    sessions = auth.Sessions(clock, lifetime_s=60)
    session = sessions.open(1000, "alice")
    assert sessions.find(session.token) is session
    clock.advance(61)
    assert sessions.find(session.token) is None

    for _ in range(auth.FAILED_LOGINS_ALLOWED):
        sessions.note_attempt("10.0.0.9")
    assert sessions.blocked_for_s("10.0.0.9") == pytest.approx(auth.FAILED_LOGINS_WINDOW_S)
    assert sessions.blocked_for_s("10.0.0.8") == 0
    clock.advance(auth.FAILED_LOGINS_WINDOW_S + 1)
    assert sessions.blocked_for_s("10.0.0.9") == 0

    mark = sessions.note_attempt("10.0.0.7")
    sessions.succeeded("10.0.0.7", mark)
    assert not sessions._recent_failures("10.0.0.7")
