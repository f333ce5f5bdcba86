"""What made a result file: the git commit of the code, whether the work tree had uncommitted changes, the exact
command, and the settings that change floating-point results (torch intra-op threads, library versions).

    info = provenance()          # {"commit": "54b8f2a…", "dirty": False, "command": "python -m srpo.cli …", …}

Why the thread count is recorded: a torch reduction split over a different number of threads sums in a
different order, the last bits of a logit change, and a sampled token can flip; an RL run at temperature 1 then
follows another trajectory from that step on (see `benchmarks/results/determinism.json`). The CPU model and the
instruction set torch dispatches to (AVX2, AVX512, ...) are recorded for the same reason: the same command, config
and thread count gave 7/40 held-out successes at step 0 in three sessions and 6/40 on a later session's AVX2-only
AMD EPYC machine. A run is not bit-repeatable across machines, and these fields make such a difference traceable.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def git_commit(repo: str | Path | None = None) -> tuple[str | None, bool | None]:
    """(commit hash, dirty) of the git work tree holding `repo` (default: this package's), or (None, None)
    outside git. Dirty means tracked files differ from the commit; untracked files are ignored."""
    where = Path(repo) if repo is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, bool(status.strip())


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name: the first "model name" line of `cpuinfo` (Linux), else `platform.processor()`, else
    "unknown"."""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def provenance(command: list[str] | None = None) -> dict[str, Any]:
    """A JSON-ready record of the code and command behind a result.

    Args:
        command: The command line (default: this process's `sys.argv`, prefixed with the interpreter).

    Returns:
        commit, dirty, command, time (UTC, ISO 8601), python, numpy, machine, cpu (model name), cpu_count,
        mujoco (where installed), torch, torch_num_threads, torch_cpu_capability (the instruction set torch's CPU
        kernels dispatch to).
    """
    import numpy as np

    commit, dirty = git_commit()
    argv = command if command is not None else [Path(sys.executable).name, *sys.argv]
    info: dict[str, Any] = {
        "commit": commit,
        "dirty": dirty,
        "command": shlex.join(argv),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
    }
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        info["mujoco"] = importlib.metadata.version("mujoco")
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_num_threads"] = torch.get_num_threads()
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except ImportError:
        pass
    return info
