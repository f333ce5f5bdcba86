"""What the LIBERO benchmark scripts share: a headless GL backend chosen before robosuite is imported, the state
of the machine recorded beside every number, and the JSON report file.

The scripts run as `python benchmarks/<name>.py`, which puts this folder on sys.path; tests load them with
tests/benchmark_module.py, which does the same.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def use_headless_gl(default: str = "egl") -> str:
    """Set MUJOCO_GL (unless the user did) and the matching PYOPENGL_PLATFORM; returns the backend.

    Call it before anything imports robosuite or mujoco: both read the variables once, at import, and child
    processes inherit them."""
    os.environ.setdefault("MUJOCO_GL", default)
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    return os.environ["MUJOCO_GL"]


def machine_info() -> dict[str, Any]:
    """Cores, platform, GL backend and 1-minute load average: timings on a shared machine mean little without
    the load they were taken under."""
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "mujoco_gl": os.environ.get("MUJOCO_GL"),
            "load_avg_1min": os.getloadavg()[0]}


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write `report` as indented JSON (creating the folder) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


def save_figure(fig: Any, path: Path, dpi: int = 110) -> None:
    """Lay out a matplotlib figure, write it to `path` (creating the folder) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
