"""What a benchmark ran on, for its results: the CPU model, count and vector extensions (Linux),
and the load then. Figures from different CPUs must not be compared as if alike."""

import os
from pathlib import Path

VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")


def cpu_model() -> str:
    """E.g. "AMD EPYC x 2 (avx2 fma)": /proc/cpuinfo's model name, how many logical CPUs have it,
    and the vector extensions that decide convolution speed."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return "unknown CPU"
    names, flags = [], set()
    for line in cpuinfo.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            names.append(value.strip())
        elif key.strip() == "flags":
            flags = set(value.split())
    extensions = " ".join(flag for flag in VECTOR_FLAGS if flag in flags) or "no AVX2"
    return f"{names[0]} x {len(names)} ({extensions})" if names else "unknown CPU"


def machine() -> str:
    """The CPU and the 1-minute load average: figures taken on a shared machine say so."""
    return f"{cpu_model()}, load average {os.getloadavg()[0]:.1f}"
