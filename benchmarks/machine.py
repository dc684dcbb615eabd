"""What a benchmark ran on, for its results: the CPU model and count (Linux), and the load then."""

import os
from pathlib import Path


def cpu_model() -> str:
    """E.g. "AMD EPYC x 2": /proc/cpuinfo's model name and how many logical CPUs have it."""
    cpuinfo = Path("/proc/cpuinfo")
    names = [
        line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
    ]
    return f"{names[0]} x {len(names)}" if names else "unknown CPU"


def machine() -> str:
    """The CPU and the 1-minute load average: figures taken on a shared machine say so."""
    return f"{cpu_model()}, load average {os.getloadavg()[0]:.1f}"
