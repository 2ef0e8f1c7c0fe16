"""`captain --watch`: follows the captain's server-sent events until Ctrl-C.

When the connection drops (the captain restarts), the watcher connects again and asks for
the events after the last one it printed, so nothing is missed or printed twice. Watching
one chore ends by itself once that chore has ended; the watch of a chore first reads the
chore's story so far, so one that had already ended shows its end and stops, and one still
going is followed from its last event on.
"""

import json
import socket
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from cli.client import CaptainUnreachable, _parse

RETRY_S = 1.0


class StreamRefused(Exception):
    """The captain answered the watch request with an error."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def watch_path(filters: dict[str, str], since: int | None) -> str:
    query = dict(filters)
    if since is not None:
        query["since"] = str(since)
    return "/events" + (f"?{urllib.parse.urlencode(query)}" if query else "")


def follow(address: tuple[str, int], filters: dict[str, str], as_json: bool,
           since: int | None = None) -> None:
    """Prints each event as it comes (after `since`, if given); reconnects after a drop;
    returns on Ctrl-C, or once the chore of a `chore` filter has ended."""
    from cli import story

    state = {"connected_once": False, "lost": False}

    def opened() -> None:
        state["connected_once"], state["lost"] = True, False
    try:
        while True:
            try:
                for event in stream(address, watch_path(filters, since), opened):
                    since = event.get("seq", since)
                    text = (json.dumps(event, separators=(",", ":")) if as_json
                            else story.line(event))
                    print(text, flush=True)
                    if _ends_the_watch(event, filters):
                        return
            except CaptainUnreachable as exc:
                if not state["connected_once"]:
                    raise
                if not state["lost"]:
                    print(f"captain: connection lost ({exc}); trying again until Ctrl-C",
                          file=sys.stderr, flush=True)
                state["lost"] = True
            time.sleep(RETRY_S)
    except KeyboardInterrupt:
        return


def _ends_the_watch(event: dict[str, Any], filters: dict[str, str]) -> bool:
    return (event.get("type") == "ChoreEnded" and "chore" in filters
            and event.get("chore_id") == filters["chore"])


def stream(address: tuple[str, int], path: str,
           opened: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
    """The events of one connection, until the captain closes it; `opened` once accepted."""
    head = (f"GET {path} HTTP/1.1\r\nHost: {address[0]}:{address[1]}\r\n"
            "Accept: text/event-stream\r\nConnection: close\r\n\r\n").encode()
    try:
        sock = socket.create_connection(address, timeout=10)
    except OSError as exc:
        raise CaptainUnreachable(
            f"cannot reach the captain at {address[0]}:{address[1]} ({exc.strerror or exc}); "
            "is it running, and is --port (or CAPTAIN_PORT) right?") from None
    with sock:
        sock.settimeout(None)
        sock.sendall(head)
        reader = _Reader(sock)
        status, headers = reader.head()
        if status != 200:
            answer = _parse(reader.rest_of_answer(headers))
            refusal = answer.refusal() or {}
            raise StreamRefused(answer.error(), refusal.get("field"))
        if opened is not None:
            opened()
        chunked = headers.get("transfer-encoding", "") == "chunked"
        body = reader.chunks() if chunked else reader.raw()
        yield from _frames(body)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _more(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except OSError as exc:
            raise CaptainUnreachable(str(exc.strerror or exc)) from None
        self.buffer += data
        return bool(data)

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            if not self._more():
                raise CaptainUnreachable("the captain closed the connection")
        found, _, self.buffer = self.buffer.partition(marker)
        return found

    def head(self) -> tuple[int, dict[str, str]]:
        lines = self._until(b"\r\n\r\n").decode(errors="replace").split("\r\n")
        self.status_line = lines[0]
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        try:
            return int(lines[0].split()[1]), headers
        except (IndexError, ValueError):
            raise CaptainUnreachable("the captain sent an answer that is not HTTP") from None

    def rest_of_answer(self, headers: dict[str, str]) -> bytes:
        while self._more():
            pass
        raw = "\r\n".join([self.status_line, *(f"{k}: {v}" for k, v in headers.items())])
        return raw.encode() + b"\r\n\r\n" + self.buffer

    def chunks(self) -> Iterator[bytes]:
        while True:
            size = int(self._until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                return
            while len(self.buffer) < size + 2:
                if not self._more():
                    raise CaptainUnreachable("the captain closed the connection")
            yield self.buffer[:size]
            self.buffer = self.buffer[size + 2:]

    def raw(self) -> Iterator[bytes]:
        if self.buffer:
            yield self.buffer
            self.buffer = b""
        while self._more():
            yield self.buffer
            self.buffer = b""


def _frames(body: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """Parses SSE frames; yields the JSON data of each event, with its seq from `id:`."""
    pending = b""
    for piece in body:
        pending += piece
        while b"\n\n" in pending:
            frame, _, pending = pending.partition(b"\n\n")
            data = [line[5:].strip() for line in frame.split(b"\n") if line.startswith(b"data:")]
            if data:
                yield json.loads(b"\n".join(data))
    raise CaptainUnreachable("the captain closed the stream")
