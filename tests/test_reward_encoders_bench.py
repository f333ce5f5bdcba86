"""benchmarks/reward_encoders.py: a run writes its rows; --append adds a later run's rows and keeps earlier ones."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from benchmark_module import load_benchmark


@pytest.fixture(scope="module")
def re_bench() -> ModuleType:
    return load_benchmark("reward_encoders")


def test_append_keeps_earlier_rows_and_records_every_run(re_bench: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "enc.json"
    base = ["--tabletop-tasks", "0", "--num-success", "3", "--num-failure", "3", "--models", "--out", str(out)]
    assert re_bench.main(base) == 0
    first = json.loads(out.read_text())
    rows = dict(first["sets"]["tabletop"]["rows"])
    assert set(rows) == {"pixel", "pixel+white", "pixel+pca16"}
    # Stand-in for rows a previous run left (a model this run does not embed).
    first["sets"]["tabletop"]["rows"]["lite9/head1"] = {"dim": 3, "metrics": {"auroc": 0.5}}
    first["sets"]["tabletop"]["costs"]["lite9"] = {"ms_per_frame": 1.0, "mparams": 1.0}
    first["sets"]["other_set"] = {"rows": {"pixel": {"dim": 1, "metrics": {}}}}
    out.write_text(json.dumps(first))

    assert re_bench.main([*base, "--append"]) == 0
    appended = json.loads(out.read_text())
    assert len(appended["settings"]) == 2 and appended["settings"][1]["append"] is True
    assert appended["sets"]["tabletop"]["rows"]["lite9/head1"]["metrics"] == {"auroc": 0.5}
    assert "lite9" in appended["sets"]["tabletop"]["costs"] and "other_set" in appended["sets"]
    # This run's rows replace the same-named earlier ones (here identical: same set, same maths).
    assert appended["sets"]["tabletop"]["rows"]["pixel"] == rows["pixel"]

    assert re_bench.main(base) == 0   # without --append the file starts over
    assert set(json.loads(out.read_text())["sets"]["tabletop"]["rows"]) == set(rows)


def test_append_refuses_a_file_made_with_other_sampling(re_bench: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "enc.json"
    out.write_text(json.dumps({"settings": {}, "num_frames": 16, "num_cuts": 10, "sets": {}}))
    with pytest.raises(SystemExit, match="num_frames=16"):
        re_bench.start_result(out, {}, append=True)
    out.write_text("{not json")
    with pytest.raises(SystemExit, match="cannot read"):
        re_bench.start_result(out, {}, append=True)
    assert re_bench.start_result(out, {"x": 1}, append=False)["settings"] == [{"x": 1}]
