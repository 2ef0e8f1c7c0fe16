"""One event per line, each line carrying a CRC-32 of the event's bytes.

A line reads `{"crc":"1a2b3c4d","e":{...event...}}`: still JSON for people and tools
(`jq .e`), and checkable without decoding, since the event's bytes sit at a fixed offset.
"""

import zlib

import msgspec

from eventlog.events import AnyEvent

_PREFIX = b'{"crc":"'
_MIDDLE = b'","e":'
_SUFFIX = b"}\n"
_EVENT_START = len(_PREFIX) + 8 + len(_MIDDLE)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)


class BadLine(ValueError):
    """A line that is torn, altered or not an event."""


def encode_line(event: AnyEvent) -> bytes:
    body = _encoder.encode(event)
    crc = b"%08x" % zlib.crc32(body)
    return _PREFIX + crc + _MIDDLE + body + _SUFFIX


def decode_line(line: bytes) -> AnyEvent:
    """The event of one line (with or without its newline), or BadLine saying why."""
    body = verify_line(line)
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise BadLine(f"event does not decode: {exc}") from None


def verify_line(line: bytes) -> bytes:
    """The event's bytes of a line whose checksum matches, or BadLine saying why."""
    if line.endswith(b"\n"):
        line = line[:-1]
    if not line.startswith(_PREFIX) or line[_EVENT_START - len(_MIDDLE):_EVENT_START] != _MIDDLE:
        raise BadLine("not an event line")
    if not line.endswith(b"}"):
        raise BadLine("line is cut short")
    body = line[_EVENT_START:-1]
    try:
        expected = int(line[len(_PREFIX):len(_PREFIX) + 8], 16)
    except ValueError:
        raise BadLine("checksum is not hexadecimal") from None
    if zlib.crc32(body) != expected:
        raise BadLine("checksum does not match")
    return body


def seq_of(body: bytes) -> int:
    """The seq of a checked event's bytes, read without decoding the event.

    The common fields (`v`, `seq`, `at`) are encoded last, and a string's quotes are
    escaped, so the last `"seq":` of the bytes is the event's own.
    """
    at = body.rfind(b'"seq":')
    end = body.find(b",", at) if at >= 0 else -1
    if at < 0:
        raise BadLine("no seq in the event")
    try:
        return int(body[at + 6:end if end >= 0 else -1])
    except ValueError:
        raise BadLine("seq is not a number") from None
