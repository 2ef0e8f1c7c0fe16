"""The sailor's first-run answers: what it offers to the captain, saved in its data folder."""

import os
import re
import tempfile
from pathlib import Path
from typing import Annotated

import msgspec

from common.units import format_bytes_exact, parse_bytes

RESOURCES_FILE = "resources.json"
GPUS_FORMS = "'none' or TYPE:VRAM separated by commas (e.g. A100:80G,A100:80G)"

GPU_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

Positive = Annotated[int, msgspec.Meta(ge=1)]


class Gpu(msgspec.Struct):
    type: str
    vram: Positive  # bytes


class SavedResources(msgspec.Struct, kw_only=True):
    captain: str  # "ADDR:PORT" of the captain
    cpus: Positive  # number of cores offered
    cores: list[int]  # the first `cpus` ids of the allowed set, sorted
    gpus: list[Gpu]  # index in the list = GPU index on the machine
    ram: Positive  # bytes
    cluster_key: str = ""  # shared secret given by the admin


def resources_path(data_dir: Path) -> Path:
    return data_dir / RESOURCES_FILE


def load_resources(data_dir: Path) -> SavedResources | None:
    """Return the saved answers, None when there are none yet."""
    path = resources_path(data_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    try:
        return msgspec.json.decode(data, type=SavedResources)
    except msgspec.DecodeError as error:
        message = f"{path} is damaged ({error}); fix it or delete it to answer again"
        raise ValueError(message) from error


def check_cores(res: SavedResources, allowed: set[int], data_dir: Path) -> None:
    """ValueError when the saved cores are not ones this process may use, or do not match
    `cpus`: chores given such cores could never start. The GPUs are not checked: that needs
    NVML, which the daemon does not load."""
    again = f"run 'sailor --data {data_dir}' again to answer the setup questions"
    path = resources_path(data_dir)
    if res.cpus != len(res.cores) or len(set(res.cores)) != len(res.cores):
        raise ValueError(f"{path} offers cpus={res.cpus} but lists the cores "
                         f"{format_ids(res.cores)}; {again}")
    missing = sorted(set(res.cores) - allowed)
    if missing:
        raise ValueError(f"{path} offers cores {format_ids(missing)} that this machine does "
                         f"not let the sailor use (allowed: {format_ids(sorted(allowed))}); "
                         f"{again}")


def save_resources(data_dir: Path, res: SavedResources) -> None:
    """Write the answers atomically, readable by the sailor's user only."""
    if not data_dir.exists():
        data_dir.mkdir(parents=True)
        os.chmod(data_dir, 0o700)  # mkdir's mode is narrowed by the umask, not set
    data = msgspec.json.format(msgspec.json.encode(res), indent=2) + b"\n"

    # mkstemp creates the side file with mode 0600 in the same folder, so the rename
    # below replaces the old file in one step.
    fd, temp_name = tempfile.mkstemp(dir=data_dir, prefix=".resources.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as temp_file:
            temp_file.write(data)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_name, resources_path(data_dir))
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_folder(data_dir)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def parse_gpus(text: str) -> list[Gpu]:
    """Read `A100:80G,A100:80G` (or `none`, or nothing) into a list of GPUs."""
    if text.strip().lower() in ("", "none"):
        return []
    gpus = []
    for item in text.split(","):
        gpu_type, colon, vram_text = item.strip().partition(":")
        if not colon or GPU_TYPE.fullmatch(gpu_type) is None:
            raise ValueError(f"expected {GPUS_FORMS}, got {item.strip()!r}")
        try:
            vram_bytes = parse_bytes(vram_text)
        except ValueError as error:
            raise ValueError(f"bad VRAM for GPU {gpu_type!r}: {error}") from None
        gpus.append(Gpu(type=gpu_type, vram=vram_bytes))
    return gpus


def format_gpus(gpus: list[Gpu]) -> str:
    """Write GPUs the way `parse_gpus` reads them."""
    if not gpus:
        return "none"
    return ",".join(f"{gpu.type}:{format_bytes_exact(gpu.vram)}" for gpu in gpus)


def format_ids(ids: list[int]) -> str:
    """Write sorted ids as ranges: [0, 1, 2, 3, 8] -> `0-3,8`."""
    runs: list[list[int]] = []
    for core_id in ids:
        if runs and core_id == runs[-1][-1] + 1:
            runs[-1].append(core_id)
        else:
            runs.append([core_id])
    return ",".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)
