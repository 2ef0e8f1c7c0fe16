"""Who is calling, from the kernel: never from a field of the request.

A client on this machine that connects over TCP owns a socket the kernel lists in
/proc/net/tcp (or tcp6) with its UID; the captain finds that socket by the client's address
and port as the server sees them. A connection from another machine has no such entry.

The kernel is asked for that one socket through sock_diag (netlink), which answers in
microseconds; reading the tables costs milliseconds once a machine has many sockets (the
kernel walks them all), so they are only read when netlink cannot answer.
"""

import errno
import socket
import struct
from typing import Any, Protocol

_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def _hex_endpoint(ip: str, port: int) -> bytes:
    if ":" in ip:
        packed = socket.inet_pton(socket.AF_INET6, ip)
        words = struct.unpack("=4I", packed)
        text = "".join(f"{w:08X}" for w in words)
    else:
        text = f"{struct.unpack('=I', socket.inet_aton(ip))[0]:08X}"
    return f"{text}:{port:04X}".encode()


class _NotAnswered(Exception):
    pass


_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLMSG_ERROR = 2
_NO_COOKIE = b"\xff" * 8


def _diag_uid(peer: tuple[str, int], server: tuple[str, int]) -> int | None:
    """Asks the kernel (sock_diag) for the one TCP socket with these two ends."""
    family = socket.AF_INET6 if ":" in peer[0] else socket.AF_INET
    src = socket.inet_pton(family, peer[0]).ljust(16, b"\0")
    dst = socket.inet_pton(family, server[0]).ljust(16, b"\0")
    sock_id = struct.pack("!HH", peer[1], server[1]) + src + dst + b"\0" * 4 + _NO_COOKIE
    request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sock_id
    header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, 1, 1, 0)
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as diag:
            diag.settimeout(1.0)
            diag.sendall(header + request)
            answer = diag.recv(8192)
    except OSError as exc:
        raise _NotAnswered(str(exc)) from None
    if struct.unpack_from("=H", answer, 4)[0] == _NLMSG_ERROR:
        code = -struct.unpack_from("=i", answer, 16)[0]
        if code == errno.ENOENT:
            return None
        raise _NotAnswered(errno.errorcode.get(code, str(code)))
    # the header (16 bytes), then inet_diag_msg: 4 bytes, the socket id (48), expires,
    # rqueue, wqueue, uid
    return int(struct.unpack_from("=I", answer, 16 + 4 + 48 + 12)[0])


def local_peer_uid(peer: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The UID owning the client end of this TCP connection, if the client is local."""
    try:
        return _diag_uid(peer, server)
    except _NotAnswered:
        pass
    client_end = _hex_endpoint(peer[0], peer[1])
    server_end = _hex_endpoint(server[0], server[1])
    needle = b" " + client_end + b" " + server_end + b" "
    for table in _TABLES:
        try:
            with open(table, "rb") as file:
                data = file.read()
        except OSError:
            continue
        at = data.find(needle)
        if at < 0:
            continue
        line_end = data.find(b"\n", at)
        fields = data[at:line_end].split()
        # local, remote, state, queues, timer, retransmits, uid
        return int(fields[6])
    return None


class Transport(Protocol):
    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


def connection_uid(transport: Transport | None) -> int | None:
    """The UID owning the client end of a server's connection, if the client is local."""
    if transport is None:
        return None
    peer = transport.get_extra_info("peername")
    server = transport.get_extra_info("sockname")
    if not peer or not server:
        return None
    return local_peer_uid(peer[:2], server[:2])
