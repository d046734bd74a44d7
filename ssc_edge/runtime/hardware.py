"""What this machine is: the CPU's name, flags and cores, its GPUs, and whether bf16 is native here.

The one place the runtime reads ``/proc/cpuinfo``: the precision choice (:mod:`.precision`) asks whether
bf16 is native, the benchmark (:mod:`.bench`) records the machine with every measurement.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .openvino_backend import openvino_available

__all__ = [
    "BF16_FLAGS",
    "RECORDED_FLAGS",
    "cpu_flags",
    "cpu_name",
    "physical_cores",
    "detected_flags",
    "native_bf16",
    "machine_info",
]

#: CPU flags (``/proc/cpuinfo``) that run bf16 natively, best first.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
#: CPU flags recorded with every measurement (benchmarks, the precision gate's hardware key).
RECORDED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16",
                  "amx_int8", "amx_tile")  # fmt: skip
_CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_field(name: str, cpuinfo: Path) -> str | None:
    with contextlib.suppress(OSError):
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    return None


def cpu_flags(cpuinfo: Path = _CPUINFO) -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none: macOS, Windows)."""
    return frozenset((_cpuinfo_field("flags", cpuinfo) or "").split())


def cpu_name(cpuinfo: Path = _CPUINFO) -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``sysctl`` on macOS), else :func:`platform.processor`."""
    name = _cpuinfo_field("model name", cpuinfo)
    if name is None and platform.system() == "Darwin":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            name = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=5, check=False).stdout.strip()  # fmt: skip
    return name or platform.processor() or platform.machine()


def physical_cores(cpuinfo: Path = _CPUINFO) -> int | None:
    """Distinct (physical id, core id) pairs of ``/proc/cpuinfo``, else psutil's count, else None."""
    with contextlib.suppress(OSError):
        cores = set()
        for block in cpuinfo.read_text().split("\n\n"):
            fields = {
                k.strip(): v.strip() for k, v in (line.split(":", 1) for line in block.splitlines() if ":" in line)
            }
            if "core id" in fields:
                cores.add((fields.get("physical id", "0"), fields["core id"]))
        if cores:
            return len(cores)
    with contextlib.suppress(ImportError):
        import psutil

        return psutil.cpu_count(logical=False)
    return None


def detected_flags() -> frozenset[str]:
    """:func:`cpu_flags`; without ``/proc/cpuinfo``, ``avx512_bf16`` when OpenVINO's CPU plugin reports BF16."""
    flags = cpu_flags()
    if flags or not openvino_available():
        return flags
    try:
        from .openvino_backend import _core

        capabilities = _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # no CPU plugin: nothing known
        return flags
    return frozenset({"avx512_bf16"}) if "BF16" in capabilities else flags


def native_bf16(flags: Iterable[str]) -> str | None:
    """The flag that makes bf16 native on this CPU (``amx_bf16`` or ``avx512_bf16``), or None."""
    present = set(flags)
    return next((flag for flag in BF16_FLAGS if flag in present), None)


def _gpus() -> list[dict[str, str]]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=False).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    rows = [[p.strip() for p in line.split(",")] for line in out.strip().splitlines()]
    return [{"name": r[0], "memory": r[1], "driver": r[2]} for r in rows if len(r) == 3]


def machine_info() -> dict[str, Any]:
    """CPU model, cores and flags (:data:`RECORDED_FLAGS`), GPUs (nvidia-smi), memory, OS and library versions,
    as plain JSON."""
    import numpy as np
    import onnxruntime as ort

    from .. import __version__

    versions = {"ssc_edge": __version__, "onnxruntime": ort.__version__, "numpy": np.__version__,
                "python": platform.python_version()}  # fmt: skip
    with contextlib.suppress(ImportError):
        import onnx

        versions["onnx"] = onnx.__version__
    memory_gb = None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    flags = cpu_flags()
    return {
        "cpu": cpu_name(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical_cores(),
        "cpu_flags": [flag for flag in RECORDED_FLAGS if flag in flags],
        "memory_gib": memory_gb,
        "gpus": _gpus(),
        "os": platform.platform(),
        "versions": versions,
        "onnxruntime_providers": list(ort.get_available_providers()),
    }
