import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import psutil
import pytest

from sailor import detect
from sailor.detect import detect_cores, detect_gpus, detect_ram_bytes, gpu_type_from_name
from sailor.resources import Gpu

REPO_ROOT = Path(__file__).resolve().parent.parent
FAKE_NVML_DIR = Path(__file__).resolve().parent / "fake_nvml"
GIB = 1024**3

TWO_A100 = [Gpu(type="A100", vram=80 * GIB), Gpu(type="A100", vram=80 * GIB)]


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Load the fake `pynvml` afresh and make `import pynvml` find it."""
    spec = importlib.util.spec_from_file_location("pynvml", FAKE_NVML_DIR / "pynvml.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return module


def test_detect_cores_is_the_sorted_allowed_set() -> None:
    cores = detect_cores()
    assert cores == sorted(os.sched_getaffinity(0))
    assert len(cores) >= 1


def test_detect_ram_bytes_is_the_total_memory() -> None:
    assert detect_ram_bytes() == psutil.virtual_memory().total


@pytest.mark.parametrize("mode", ["two-a100", "bytes"])
def test_detect_gpus_reads_nvml(
    fake_nvml: ModuleType, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("FAKE_NVML", mode)
    assert detect_gpus() == TWO_A100
    assert fake_nvml.shutdown_calls == 1


def test_detect_gpus_is_empty_when_nvml_does_not_start(
    fake_nvml: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NVML", "fail-init")
    assert detect_gpus() == []
    assert fake_nvml.shutdown_calls == 0


def test_detect_gpus_is_empty_and_shuts_down_when_a_query_fails(
    fake_nvml: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NVML", "fail-query")
    assert detect_gpus() == []
    assert fake_nvml.shutdown_calls == 1


def test_detect_gpus_is_empty_without_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    assert detect_gpus() == []


@pytest.mark.parametrize(("mode", "expected"), [("two-a100", TWO_A100), ("fail-init", [])])
def test_detect_gpus_with_the_fake_first_on_pythonpath(mode: str, expected: list[Gpu]) -> None:
    env = dict(os.environ, FAKE_NVML=mode, PYTHONPATH=f"{FAKE_NVML_DIR}{os.pathsep}{REPO_ROOT}")
    script = (
        "import json, msgspec, pynvml\n"
        "from sailor.detect import detect_gpus\n"
        "print(json.dumps([pynvml.__file__, msgspec.to_builtins(detect_gpus())]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    module_file, gpus = json.loads(done.stdout)
    assert Path(module_file).parent == FAKE_NVML_DIR
    assert gpus == [{"type": gpu.type, "vram": gpu.vram} for gpu in expected]


@pytest.mark.parametrize(
    ("name", "gpu_type"),
    [
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA A100-PCIE-40GB", "A100"),
        ("NVIDIA A100 80GB PCIe", "A100"),
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA H100 NVL", "H100"),
        ("NVIDIA H200", "H200"),
        ("Tesla V100-SXM2-32GB", "V100"),
        ("NVIDIA GeForce RTX 3090", "RTX-3090"),
        ("NVIDIA RTX A6000", "RTX-A6000"),
        ("Quadro RTX 8000", "RTX-8000"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA", "NVIDIA"),
        ("", "gpu"),
    ],
)
def test_gpu_type_from_name(name: str, gpu_type: str) -> None:
    assert gpu_type_from_name(name) == gpu_type


def test_detect_logs_why_there_are_no_gpus(
    fake_nvml: ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FAKE_NVML", "fail-init")
    with caplog.at_level("INFO", logger=detect.__name__):
        detect_gpus()
    assert "Driver Not Loaded" in caplog.text
