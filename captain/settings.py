"""How a captain daemon is set up: where it keeps its data and how long it waits."""

import os
import sys
from pathlib import Path

import msgspec


def install_root() -> Path:
    """The folder the project was installed from: the checkout beside `.captainenv`."""
    source = Path(__file__).resolve().parents[1]
    if (source / "pyproject.toml").exists():
        return source
    return Path(sys.prefix).resolve().parent


def default_data_dir(daemon: str) -> Path:
    variable = f"{daemon.upper()}_DATA"
    if os.environ.get(variable):
        return Path(os.environ[variable])
    return install_root() / "data" / daemon


class CaptainSettings(msgspec.Struct, kw_only=True):
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8750
    # The dashboard over HTTPS: served on web_port when a certificate and key are given.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    web_port: int | None = None
    down_after_s: float = 10.0
    order_timeout_s: float = 5.0
    sailor_call_timeout_s: float = 5.0
    retention_s: float = 120.0
    reserve_after_s: float = 60.0
    housekeeping_interval_s: float = 0.5
    views_interval_s: float = 0.5
    allow_root_chores: bool = False
    snapshot_every: int = 50_000

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"
