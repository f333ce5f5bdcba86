"""Import a script of benchmarks/ as a module, so that tests can call its functions (the folder is no package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """The module of benchmarks/<name>.py, executed once per call."""
    if str(BENCHMARKS) not in sys.path:  # as `python benchmarks/<name>.py` has it: for their shared bench_common
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses resolve their (string) annotations through sys.modules.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
