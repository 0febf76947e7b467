"""What every benchmark records of the machine it ran on (results are read beside it)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import psutil

GIB = 1024**3


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else what ``platform`` knows)."""
    return next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )


def machine_facts(**versions: Any) -> dict[str, Any]:
    """CPUs, CPU model, memory and Python, plus the versions the benchmark names."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
        "python": platform.python_version(),
        **versions,
    }
