"""A small HTTP client for the captain's endpoints on this machine.

It uses a plain socket rather than an HTTP library: a command's whole run is a few
milliseconds of work, and importing a full client would cost more than that.
"""

from __future__ import annotations

import json
import os
import socket
import sys

# `typing` is imported for the type checker only: the command's start-up pays every import.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

DEFAULT_PORT = 8750
# Written by a captain started as root (see captain/runtime_file.py).
RUNTIME_FILE = "/run/captain/captain.json"


class CaptainUnreachable(Exception):
    pass


class Answer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def refusal(self) -> dict[str, Any] | None:
        """The captain's `{"error": ..., "field": ...}` when the body is one, else None."""
        try:
            data = self.json()
        except ValueError:
            return None
        return data if isinstance(data, dict) and "error" in data else None

    def error(self) -> str:
        try:
            data = self.json()
        except ValueError:
            return self.body.decode(errors="replace").strip() or f"HTTP {self.status}"
        if isinstance(data, dict) and "error" in data:
            return str(data["error"])
        return f"HTTP {self.status}"


def print_refusal(message: str, field: str | None = None) -> None:
    """A failure as a JSON object on stdout, shaped as the captain's refusals."""
    body = {"error": message} if field is None else {"error": message, "field": field}
    sys.stdout.write(json.dumps(body, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def fail(message: str, field: str | None = None, as_json: bool = False) -> NoReturn:
    """How a client command fails: one readable line on stderr and a non-zero exit; with
    --json, the same first as a JSON object on stdout."""
    if as_json:
        print_refusal(message, field)
    sys.stderr.write(f"captain: {message}\n")
    sys.exit(1)


def print_answer(answer: Answer) -> NoReturn:
    """--json: the endpoint's answer as it came; a refusal also as a line on stderr."""
    if not answer.ok and answer.refusal() is None:
        fail(answer.error(), as_json=True)
    sys.stdout.write(answer.body.decode() + "\n")
    if answer.ok:
        sys.exit(0)
    sys.stdout.flush()
    sys.stderr.write(f"captain: {answer.error()}\n")
    sys.exit(1)


def captain_address(port: int | None) -> tuple[str, int]:
    """Where to call: --port, else CAPTAIN_PORT, else where this machine's captain said it
    listens (its runtime file), else the default port; on CAPTAIN_HOST or this machine."""
    host = os.environ.get("CAPTAIN_HOST")
    if port is None and os.environ.get("CAPTAIN_PORT"):
        port = int(os.environ["CAPTAIN_PORT"])
    if port is None or host is None:
        published_host, published_port = _published()
        port = port or published_port
        host = host or published_host
    return host or "127.0.0.1", port or DEFAULT_PORT


def _published() -> tuple[str | None, int | None]:
    """What the captain of this machine wrote about itself at start, if anything."""
    path = os.environ.get("CAPTAIN_RUNTIME_FILE") or RUNTIME_FILE
    try:
        with open(path) as file:
            data = json.load(file)
        port = int(data["port"])
        host = str(data.get("host") or "")
    except (OSError, ValueError, KeyError, TypeError):
        return None, None
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return host, port


def call(address: tuple[str, int], method: str, path: str, body: Any = None,
         timeout_s: float = 30.0) -> Answer:
    payload = b"" if body is None else json.dumps(body).encode()
    head = (f"{method} {path} HTTP/1.1\r\nHost: {address[0]}:{address[1]}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            "Connection: close\r\n\r\n").encode()
    try:
        with socket.create_connection(address, timeout=timeout_s) as sock:
            sock.sendall(head + payload)
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as exc:
        raise CaptainUnreachable(
            f"cannot reach the captain at {address[0]}:{address[1]} ({exc.strerror or exc}); "
            "is it running, and is --port (or CAPTAIN_PORT) right?") from None
    return _parse(b"".join(chunks))


def _parse(data: bytes) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise CaptainUnreachable("the captain sent an answer that is not HTTP") from None
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        headers[key.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding") == b"chunked":
        body = _unchunk(body)
    return Answer(status, body)


def _unchunk(data: bytes) -> bytes:
    out = []
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(rest[:size])
        data = rest[size + 2:]
    return b"".join(out)
