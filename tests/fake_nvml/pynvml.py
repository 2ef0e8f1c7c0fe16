"""A stand-in for NVIDIA's `pynvml`, for tests: put this folder first on the import path.

The environment variable FAKE_NVML chooses the machine it describes:
- unset or `two-a100`: two NVIDIA A100-SXM4-80GB of 80 GiB, names given as str;
- `bytes`: the same GPUs, names given as bytes (as older bindings do);
- `fail-init`: nvmlInit raises NVMLError (no driver);
- `fail-query`: nvmlInit works, reading the memory raises NVMLError.
"""

import os
from dataclasses import dataclass

GIB = 1024**3

init_calls = 0
shutdown_calls = 0


class NVMLError(Exception):
    pass


@dataclass(frozen=True)
class _Handle:
    index: int


@dataclass(frozen=True)
class _Memory:
    total: int
    free: int
    used: int


def _mode() -> str:
    return os.environ.get("FAKE_NVML", "two-a100")


def nvmlInit() -> None:
    global init_calls
    if _mode() == "fail-init":
        raise NVMLError("Driver Not Loaded")
    init_calls += 1


def nvmlShutdown() -> None:
    global shutdown_calls
    shutdown_calls += 1


def nvmlDeviceGetCount() -> int:
    return 2


def nvmlDeviceGetHandleByIndex(index: int) -> _Handle:
    if not 0 <= index < 2:
        raise NVMLError("Invalid Argument")
    return _Handle(index)


def nvmlDeviceGetName(handle: _Handle) -> str | bytes:
    name = "NVIDIA A100-SXM4-80GB"
    return name.encode() if _mode() == "bytes" else name


def nvmlDeviceGetMemoryInfo(handle: _Handle) -> _Memory:
    if _mode() == "fail-query":
        raise NVMLError("Unknown Error")
    return _Memory(total=80 * GIB, free=80 * GIB, used=0)
