"""What this machine has: the cores this process may use, its memory and its NVIDIA GPUs."""

import logging
import os
import re
from types import ModuleType

import psutil

from sailor.resources import GPU_TYPE, Gpu

log = logging.getLogger(__name__)

# Words of a marketing name that say nothing about which GPU it is: vendor and product line,
# memory size, packaging. `NVIDIA A100-SXM4-80GB` and `NVIDIA A100 80GB PCIe` are both `A100`.
_NOISE_WORDS = {"nvidia", "tesla", "geforce", "quadro", "pcie", "nvl"}
_NOISE_WORD = re.compile(r"[0-9]+GB|SXM[0-9]*|HBM[0-9a-z]*", re.IGNORECASE)


def detect_cores() -> list[int]:
    """The ids of the cores this process is allowed to run on, sorted."""
    return sorted(os.sched_getaffinity(0))


def detect_ram_bytes() -> int:
    return int(psutil.virtual_memory().total)


def detect_gpus() -> list[Gpu]:
    """The NVIDIA GPUs NVML sees, in index order; none when NVML is missing or fails."""
    try:
        import pynvml
    except ImportError as error:
        log.info("sailor: no NVML library for Python (%s); no GPUs detected", error)
        return []

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        log.info("sailor: NVML did not start (%s); no GPUs detected", error)
        return []
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            if isinstance(name, bytes):
                name = name.decode("utf-8", "replace")
            vram_bytes = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
            log.debug("sailor: gpu=%d name=%r vram_bytes=%d", index, name, vram_bytes)
            gpus.append(Gpu(type=gpu_type_from_name(name), vram=vram_bytes))
        return gpus
    except pynvml.NVMLError as error:
        log.info("sailor: NVML failed while listing GPUs (%s); no GPUs detected", error)
        return []
    finally:
        _shut_down_nvml(pynvml)


def _shut_down_nvml(pynvml: ModuleType) -> None:
    try:
        pynvml.nvmlShutdown()
    except Exception as error:  # a failed shutdown changes nothing for the caller
        log.debug("sailor: NVML shutdown failed (%s)", error)


def gpu_type_from_name(name: str) -> str:
    """Shorten an NVML name to the model (`NVIDIA GeForce RTX 3090` -> `RTX-3090`)."""
    model = name.strip().split("-")[0]
    words = [
        word
        for word in model.split()
        if word.lower() not in _NOISE_WORDS and _NOISE_WORD.fullmatch(word) is None
    ]
    short = "-".join(words)
    if GPU_TYPE.fullmatch(short):
        return short
    # An unusual name: keep all of it, with what the GPU list cannot hold replaced.
    fallback = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip("-._")
    return fallback or "gpu"
