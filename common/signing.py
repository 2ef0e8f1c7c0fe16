"""Signed calls between the captain and its sailors, with the cluster key they share.

The sender puts three headers on each request: a random nonce, its wall-clock time, and an
HMAC-SHA256, keyed with the cluster key, over the method, the path, that time, that nonce
and the body. The receiver recomputes the HMAC, refuses a time further than `MAX_SKEW_S`
from its own clock (the machines' clocks may differ that much), and remembers every nonce
it accepted for `NONCE_WINDOW_S` on its own monotonic clock, refusing the same nonce twice.
Once a nonce is forgotten, its time is out of the skew allowed, so a replay is still refused.

Only the requests are signed: answers are not, and nothing is encrypted. The nonces live in
memory: for `MAX_SKEW_S` after a daemon restarts, a request recorded before the restart can
be replayed to it once.
"""

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from common.clock import CLOCK, Clock

NONCE_HEADER = "X-Captain-Nonce"
TIME_HEADER = "X-Captain-Time"
SIGNATURE_HEADER = "X-Captain-Signature"
MAX_SKEW_S = 300.0
NONCE_WINDOW_S = 2 * MAX_SKEW_S
KEY_BYTES = 32
MAX_NONCE_CHARS = 64


class SignatureRefused(Exception):
    """A request whose signature is missing, wrong, stale or replayed."""


def new_key() -> str:
    """A fresh random cluster key, as text an admin can copy."""
    return secrets.token_urlsafe(KEY_BYTES)


def read_key_file(path: Path) -> str:
    """The key in a file only its owner may read; ValueError saying what is wrong."""
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read the cluster key file {path}: {exc.strerror}") from None
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ValueError(f"the cluster key file {path} may be read by other users; "
                         f"make it private first (chmod 600 {path})")
    if info.st_uid != os.geteuid():
        raise ValueError(f"the cluster key file {path} belongs to uid {info.st_uid}, "
                         f"not to this user")
    if not text:
        raise ValueError(f"the cluster key file {path} is empty")
    return text


def signature(key: bytes, method: str, path: str, time_text: str, nonce: str,
              body: bytes) -> str:
    head = f"{method.upper()}\n{path}\n{time_text}\n{nonce}\n".encode()
    return hmac.new(key, head + body, hashlib.sha256).hexdigest()


class ClusterKey:
    """Signs this daemon's requests, and checks the requests it receives."""

    def __init__(self, key: str, clock: Clock = CLOCK) -> None:
        self._key = key.encode()
        self._clock = clock
        self._seen: dict[str, float] = {}  # nonce -> forget at (monotonic), oldest first

    def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        """The headers that sign one request."""
        time_text = f"{self._clock.wall():.3f}"
        nonce = secrets.token_hex(16)
        return {
            NONCE_HEADER: nonce,
            TIME_HEADER: time_text,
            SIGNATURE_HEADER: signature(self._key, method, path, time_text, nonce, body),
        }

    def check(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> None:
        """Accepts a request once; raises SignatureRefused saying why it is refused."""
        nonce = headers.get(NONCE_HEADER, "")
        time_text = headers.get(TIME_HEADER, "")
        given = headers.get(SIGNATURE_HEADER, "")
        if not (nonce and time_text and given):
            raise SignatureRefused("the request is not signed with the cluster key")
        if len(nonce) > MAX_NONCE_CHARS:
            raise SignatureRefused("the request's nonce is too long")
        expected = signature(self._key, method, path, time_text, nonce, body)
        if not hmac.compare_digest(expected, given):
            raise SignatureRefused("the request's signature does not match the cluster key")
        self._forget_old_nonces()
        try:
            sent_at = float(time_text)
        except ValueError:
            raise SignatureRefused("the request's time is not a number") from None
        skew_s = abs(self._clock.wall() - sent_at)
        if not skew_s <= MAX_SKEW_S:
            raise SignatureRefused(f"the request's time is {skew_s:.0f} s away from this "
                                   f"machine's clock (at most {MAX_SKEW_S:.0f} s allowed)")
        if nonce in self._seen:
            raise SignatureRefused("the request was already received once (a replay)")
        self._seen[nonce] = self._clock.monotonic() + NONCE_WINDOW_S

    def _forget_old_nonces(self) -> None:
        now = self._clock.monotonic()
        while self._seen:
            oldest = next(iter(self._seen))
            if self._seen[oldest] > now:
                return
            del self._seen[oldest]


class Request(Protocol):
    """What `check_request` reads of an aiohttp request."""

    @property
    def method(self) -> str: ...

    @property
    def raw_path(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    async def read(self) -> bytes: ...


async def check_request(request: Request, key: ClusterKey | None,
                        unsigned_allowed: Callable[[], bool]) -> None:
    """Raises SignatureRefused unless the request is signed with the key.

    A request without any signature is still accepted when `unsigned_allowed()` says so:
    the daemons use this for a caller that is root on this very machine, who can read the
    key anyway. A daemon without a key accepts such callers only.
    """
    signed = any(name in request.headers for name in (NONCE_HEADER, TIME_HEADER,
                                                       SIGNATURE_HEADER))
    if key is None or not signed:
        if unsigned_allowed():
            return
        if key is None:
            raise SignatureRefused("this daemon has no cluster key: it takes calls only from "
                                   "root on its own machine")
    assert key is not None
    key.check(request.method, request.raw_path, request.headers, await request.read())
