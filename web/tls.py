"""HTTPS for the dashboard: the server's TLS context, and a self-signed pair to start with.

A self-signed certificate keeps passwords off the wire in clear, but a browser cannot tell it
from an impostor's: it warns until each user accepts it once (or the admin installs one
signed by an authority the browsers trust).
"""

import os
import socket
import ssl
import subprocess
from pathlib import Path

CERT_DAYS = 825


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """Raises OSError or ssl.SSLError when the files cannot be read or do not match."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def make_self_signed_pair(cert: Path, key: Path, names: list[str]) -> None:
    """Writes a new certificate for these host names and addresses, and its key (mode 0600).

    Uses the `openssl` command; raises RuntimeError with its message when it fails.
    """
    names = list(dict.fromkeys([*names, socket.getfqdn(), "localhost", "127.0.0.1"]))
    alt_names = ",".join(f"IP:{n}" if _is_address(n) else f"DNS:{n}" for n in names)
    cert.parent.mkdir(parents=True, exist_ok=True)
    key.parent.mkdir(parents=True, exist_ok=True)
    key.unlink(missing_ok=True)
    os.close(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    done = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:3072", "-sha256", "-nodes",
         "-days", str(CERT_DAYS), "-subj", f"/CN={names[0]}",
         "-addext", f"subjectAltName={alt_names}", "-keyout", str(key), "-out", str(cert)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip()
                           else f"openssl exited with {done.returncode}")
    os.chmod(key, 0o600)


def _is_address(name: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, name)
            return True
        except OSError:
            continue
    return False
