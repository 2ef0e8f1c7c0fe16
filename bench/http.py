"""A lean HTTP/1.1 client over asyncio streams: keep-alive, JSON bodies, one request at a time.

Load generators share the machine with the captain they measure, so each request must cost
them as little as possible: no client library, just bytes on a kept-open connection.
"""

import asyncio
from collections.abc import Mapping


class HttpError(Exception):
    pass


class Connection:
    """One kept-open connection to host:port, optionally leaving from `local_host`."""

    def __init__(self, host: str, port: int, local_host: str | None = None) -> None:
        self.host = host
        self.port = port
        self.local_host = local_host
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        local = (self.local_host, 0) if self.local_host else None
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, local_addr=local)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
            self._writer = self._reader = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
        """Sends one request and returns (status, body); reopens a connection that was shut."""
        if self._writer is None or self._writer.is_closing():
            await self.open()
        assert self._reader is not None and self._writer is not None
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"{extra}\r\n")
        self._writer.write(head.encode() + body)
        return await self._read_answer()

    async def _read_answer(self) -> tuple[int, bytes]:
        assert self._reader is not None
        status_line = await self._reader.readline()
        if not status_line:
            await self.close()
            raise HttpError("connection closed before an answer")
        status = int(status_line.split()[1])
        length = 0
        close = False
        while True:
            header = await self._reader.readline()
            if header in (b"\r\n", b"\n", b""):
                break
            key, _, value = header.partition(b":")
            key = key.strip().lower()
            if key == b"content-length":
                length = int(value)
            elif key == b"connection" and value.strip().lower() == b"close":
                close = True
        data = await self._reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, data
