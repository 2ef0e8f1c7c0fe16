"""Who is calling, from the kernel: never from a field of the request.

A client on this machine that connects over TCP owns a socket the kernel lists in
/proc/net/tcp (or tcp6) with its UID; the captain finds that socket by the client's address
and port as the server sees them. A connection from another machine has no such entry.
"""

import socket
import struct

_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def _hex_endpoint(ip: str, port: int) -> bytes:
    if ":" in ip:
        packed = socket.inet_pton(socket.AF_INET6, ip)
        words = struct.unpack("=4I", packed)
        text = "".join(f"{w:08X}" for w in words)
    else:
        text = f"{struct.unpack('=I', socket.inet_aton(ip))[0]:08X}"
    return f"{text}:{port:04X}".encode()


def local_peer_uid(peer: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The UID owning the client end of this TCP connection, if the client is local."""
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
