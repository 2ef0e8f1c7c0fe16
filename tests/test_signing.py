"""The signature of calls between daemons, on a clock the test moves."""

import pytest

from common.clock import ManualClock
from common.signing import MAX_SKEW_S, NONCE_WINDOW_S, ClusterKey, SignatureRefused

BODY = b'{"port": 9}'


def pair(skew_s: float = 0.0) -> tuple[ClusterKey, ClusterKey, ManualClock]:
    """A sender whose clock is `skew_s` ahead of the receiver's, and the receiver's clock."""
    receiver_clock = ManualClock()
    sender = ClusterKey("k" * 43, ManualClock(wall_s=receiver_clock.wall() + skew_s))
    return sender, ClusterKey("k" * 43, receiver_clock), receiver_clock


def test_a_signed_request_is_accepted_once():
    sender, receiver, _ = pair()
    headers = sender.headers("POST", "/sailor_awake", BODY)

    receiver.check("POST", "/sailor_awake", headers, BODY)
    with pytest.raises(SignatureRefused, match="replay"):
        receiver.check("POST", "/sailor_awake", headers, BODY)


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/sailor_awake", BODY),
    ("POST", "/sailor_report", BODY),
    ("POST", "/sailor_awake", b'{"port": 10}'),
])
def test_any_change_to_the_request_breaks_the_signature(method: str, path: str, body: bytes):
    sender, receiver, _ = pair()
    headers = sender.headers("POST", "/sailor_awake", BODY)

    with pytest.raises(SignatureRefused, match="does not match"):
        receiver.check(method, path, headers, body)


def test_changed_time_or_nonce_breaks_the_signature():
    sender, receiver, _ = pair()
    for name, value in (("X-Captain-Time", "1"), ("X-Captain-Nonce", "00")):
        headers = {**sender.headers("POST", "/p", BODY), name: value}
        with pytest.raises(SignatureRefused, match="does not match"):
            receiver.check("POST", "/p", headers, BODY)


def test_missing_headers_are_refused():
    _, receiver, _ = pair()
    with pytest.raises(SignatureRefused, match="not signed"):
        receiver.check("POST", "/p", {}, BODY)


@pytest.mark.parametrize("skew_s", [-MAX_SKEW_S + 1, MAX_SKEW_S - 1])
def test_clock_skew_within_the_allowance_is_tolerated(skew_s: float):
    sender, receiver, _ = pair(skew_s)
    receiver.check("POST", "/p", sender.headers("POST", "/p", BODY), BODY)


@pytest.mark.parametrize("skew_s", [-MAX_SKEW_S - 1, MAX_SKEW_S + 1])
def test_a_time_beyond_the_allowance_is_refused(skew_s: float):
    sender, receiver, _ = pair(skew_s)
    with pytest.raises(SignatureRefused, match="away from this machine's clock"):
        receiver.check("POST", "/p", sender.headers("POST", "/p", BODY), BODY)


def test_a_forgotten_nonce_is_still_refused_by_its_age():
    sender, receiver, clock = pair(skew_s=MAX_SKEW_S - 1)  # the worst skew that passes
    headers = sender.headers("POST", "/p", BODY)
    receiver.check("POST", "/p", headers, BODY)

    clock.advance(NONCE_WINDOW_S + 1)
    with pytest.raises(SignatureRefused, match="away from this machine's clock"):
        receiver.check("POST", "/p", headers, BODY)
    assert receiver._seen == {}  # the memory of nonces does not grow without end
