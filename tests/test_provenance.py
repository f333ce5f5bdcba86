"""srpo.provenance: what a result file records about the code and the machine that made it."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from srpo.provenance import cpu_model, provenance


def test_provenance_records_the_machine_that_changes_floats() -> None:
    info = provenance(["srpo", "train"])
    json.dumps(info)  # JSON-ready
    assert info["command"] == "srpo train"
    assert info["cpu"] == cpu_model() and info["cpu"]
    assert info["cpu_count"] >= 1
    assert info["torch_num_threads"] == torch.get_num_threads()
    assert info["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_cpu_model_reads_the_first_model_name(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC 7B13\n")
    assert cpu_model(cpuinfo) == "AMD EPYC 7B13"


def test_cpu_model_falls_back_without_cpuinfo(tmp_path: Path) -> None:
    assert cpu_model(tmp_path / "missing") == (platform.processor() or "unknown")
    empty = tmp_path / "cpuinfo"
    empty.write_text("processor\t: 0\nmodel name\t:\n")
    assert cpu_model(empty) == (platform.processor() or "unknown")
