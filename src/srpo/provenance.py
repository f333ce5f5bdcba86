"""What made a result file: the git commit of the code, whether the work tree had uncommitted changes, the exact
command, and the settings that change floating-point results (torch intra-op threads, library versions).

    info = provenance()          # {"commit": "54b8f2a…", "dirty": False, "command": "python -m srpo.cli …", …}

Why the thread count is recorded: a torch reduction split over a different number of threads sums in a
different order, the last bits of a logit change, and a sampled token can flip; an RL run at temperature 1 then
follows another trajectory from that step on (see `benchmarks/results/determinism.json`).
"""

from __future__ import annotations

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


def provenance(command: list[str] | None = None) -> dict[str, Any]:
    """A JSON-ready record of the code and command behind a result.

    Args:
        command: The command line (default: this process's `sys.argv`, prefixed with the interpreter).

    Returns:
        commit, dirty, command, time (UTC, ISO 8601), python, torch, torch_num_threads, numpy, machine.
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
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_num_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info
