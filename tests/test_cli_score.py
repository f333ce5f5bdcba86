"""`srpo score` through the installed console script."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from srpo.algo.advantages import group_advantages
from srpo.config.reward import RewardConfig
from srpo.reward.progress import compute_progress_rewards

SRPO = str(Path(sys.executable).with_name("srpo"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SRPO, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def batch_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 16
    emb = rng.normal(size=(n, 6))
    success = np.asarray([1, 0, 0, 0, 1, 1, 0, 0] * 2, dtype=bool)
    task_ids = np.repeat([3, 7], 8)
    group_ids = np.repeat([0, 1, 2, 3], 4)
    path = tmp_path / "batch.npz"
    np.savez(path, embeddings=emb, success=success, task_ids=task_ids, group_ids=group_ids)
    return path


def read_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("preset", ["official", "paper"])
@pytest.mark.parametrize("group_by", ["task", "group"])
def test_score_matches_library_in_input_order(batch_file: Path, tmp_path: Path, preset: str, group_by: str):
    out = tmp_path / "scores.csv"
    proc = run("score", str(batch_file), "--preset", preset, "--group-by", group_by, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(out.read_text())
    data = np.load(batch_file)
    expected = compute_progress_rewards(
        data["embeddings"], data["success"], data["task_ids"], data["group_ids"],
        RewardConfig.preset(preset, reference_scope=group_by),  # type: ignore[arg-type]
    )
    assert [int(r["index"]) for r in rows] == list(range(16))
    np.testing.assert_allclose([float(r["reward"]) for r in rows], expected.rewards, rtol=1e-8)
    np.testing.assert_allclose(
        [float(r["advantage"]) for r in rows], group_advantages(expected.rewards, data["group_ids"]), rtol=1e-7,
        atol=1e-9,
    )
    assert {"distance", "normalized_distance", "cluster_id"} <= set(rows[0])
    assert [int(r["task_id"]) for r in rows] == data["task_ids"].tolist()


def test_binary_gives_grpo_advantages(batch_file: Path):
    proc = run("score", str(batch_file), "--binary")
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(proc.stdout)
    data = np.load(batch_file)
    np.testing.assert_allclose(
        [float(r["advantage"]) for r in rows], group_advantages(data["success"].astype(float), data["group_ids"]),
        rtol=1e-7,
    )
    assert {r["reward"] for r in rows} == {"0", "1"}


def test_bad_input_exits_non_zero_with_message(tmp_path: Path):
    bad = tmp_path / "bad.npz"
    emb = np.zeros((4, 3))
    emb[2, 1] = np.nan
    np.savez(bad, embeddings=emb, success=np.zeros(4, bool), task_ids=np.zeros(4, int), group_ids=np.zeros(4, int))
    proc = run("score", str(bad))
    assert proc.returncode == 2
    assert "NaN or inf in 1 row(s): 2" in proc.stderr
    missing = tmp_path / "missing.npz"
    np.savez(missing, embeddings=np.zeros((2, 3)), success=np.zeros(2, bool))
    proc = run("score", str(missing))
    assert proc.returncode == 2
    assert "lacks task_ids, group_ids" in proc.stderr
    proc = run("score", str(tmp_path / "absent.npz"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_synthetic_demo_prints_table():
    proc = run("score")
    assert proc.returncode == 0, proc.stderr
    assert "max|A-A_bin|" in proc.stdout
    rho = float(proc.stdout.rsplit("failures:", 1)[1])
    assert rho > 0.9  # the reward tracks the synthetic batch's ground-truth progress
