"""Ctrl-C / SIGTERM during `srpo train`, through the real CLI entry point in a subprocess: the step in flight is
finished (first signal) or abandoned (second), the run directory stays resumable, one line names the step and
the resume command, the exit status is 128 + the signal, and no rollout worker process survives."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from srpo.interrupt import StopOnSignal, interrupted_message
from srpo.manifest import verify_manifest
from srpo.run_dir import checkpoint_step, list_checkpoints, read_metrics

SRPO = str(Path(sys.executable).with_name("srpo"))

TINY = [
    "env.tabletop.num_tasks=2", "env.tabletop.max_steps=16", "env.tabletop.image_size=32", "policy.image_size=32",
    "policy.d_model=32", "policy.num_layers=1", "policy.num_heads=2", "policy.ff_dim=64", "policy.chunk_size=4",
    "algo_name=grpo", "algo.group_size=2", "algo.num_prompts_per_step=2", "num_eval_episodes_per_task=0",
    "num_videos_per_step=0", "tensorboard=false", "rollout.num_workers=2", "rollout.num_envs_per_worker=2",
]


def start_train(run_dir: Path, *extra: str) -> subprocess.Popen[str]:
    args = ["train", "--preset", "tabletop", "--run-dir", str(run_dir), "--steps", "500"]
    for item in [*TINY, *extra]:
        args += ["--set", item]
    return subprocess.Popen([SRPO, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, proc: subprocess.Popen[str], what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"srpo train exited ({proc.returncode}) before {what}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.05)


def worker_pids(proc: subprocess.Popen[str]) -> list[int]:
    return [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]


def survivors(pids: list[int], grace_s: float = 30.0) -> list[int]:
    """The processes among `pids` still alive `grace_s` after srpo train exited (an exiting child, e.g.
    multiprocessing's resource tracker on a loaded machine, may need a moment; an orphan never goes)."""
    deadline = time.monotonic() + grace_s
    while (left := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_sigint_finishes_the_step_checkpoints_and_resumes(tmp_path: Path):
    run_dir = tmp_path / "run"
    proc = start_train(run_dir, "checkpoint_every=1000")  # the only checkpoint is the one the stop writes
    wait_for(lambda: len(read_metrics(run_dir)) >= 1, proc, "a finished step")
    wait_for(lambda: len(worker_pids(proc)) >= 2, proc, "two rollout workers")
    workers = worker_pids(proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    match = re.search(r"srpo train: stopped by SIGINT at step (\d+) of 500 \(checkpoint written\); resume with: "
                      r"srpo train --resume (\S+)$", stderr.strip().splitlines()[-1])
    assert match, stderr
    step = int(match.group(1))
    assert match.group(2) == str(run_dir)
    assert [checkpoint_step(c) for c in list_checkpoints(run_dir)] == [step]
    verify_manifest(list_checkpoints(run_dir)[0], required=True)
    assert max(r["step"] for r in read_metrics(run_dir)) == step  # the step in flight was finished, not lost
    assert not survivors(workers), "a rollout worker outlived srpo train"

    resumed = subprocess.run([SRPO, "train", "--resume", str(run_dir), "--steps", str(step + 1)],
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert f"finished {step + 1} steps" in resumed.stdout
    assert [r["step"] for r in read_metrics(run_dir)] == list(range(1, step + 2))


def test_second_sigterm_abandons_the_step_and_leaves_the_run_resumable(tmp_path: Path):
    run_dir = tmp_path / "run"
    proc = start_train(run_dir, "checkpoint_every=1")
    wait_for(lambda: bool(list_checkpoints(run_dir)), proc, "a checkpoint")
    workers = worker_pids(proc)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert re.search(r"stopped by SIGTERM at step \d+ of 500 \(checkpoint written\); resume with: srpo train "
                     r"--resume \S+$", stderr.strip())
    for ckpt in list_checkpoints(run_dir):
        verify_manifest(ckpt, required=True)
    assert not survivors(workers), "a rollout worker outlived srpo train"
    json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])  # no half-written record


def test_stop_on_signal_first_requests_then_abandons():
    from srpo.interrupt import Interrupted

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with StopOnSignal("srpo test") as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested() and stop.exit_code == 143 and stop.signal_name == "SIGTERM"
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGINT)
    assert {sig: signal.getsignal(sig) for sig in before} == before  # previous handlers restored


def test_interrupted_message_without_a_checkpoint():
    line = interrupted_message("srpo train", "SIGINT", "runs/x y", None, 10)
    assert "before the first checkpoint" in line and "nothing to resume" in line
    assert interrupted_message("srpo train", "SIGINT", "runs/x y", 4, 10).endswith(
        "at step 4 of 10 (checkpoint written); resume with: srpo train --resume 'runs/x y'")


def test_a_stop_between_steps_never_loses_the_finished_step(tmp_path: Path) -> None:
    # The subprocess tests' race, made deterministic: the stop arrives once step 1's metrics are on disk, after the
    # loop decided not to checkpoint step 1. The loop must run and checkpoint one more step, not exit with a
    # finished step that no checkpoint holds (the resume would then redo it and duplicate its metrics).
    from srpo.config.train import load_config
    from srpo.trainer import Trainer

    run_dir = tmp_path / "run"
    overrides = [o for o in TINY if not o.startswith("rollout.")]
    cfg = load_config(preset="tabletop", overrides=[*overrides, "rollout.num_workers=0",
                                                    "checkpoint_every=1000", "num_steps=50", f"run_dir={run_dir}"])
    with Trainer(cfg, show_progress=False) as trainer:
        history = trainer.train(should_stop=lambda: bool(read_metrics(run_dir)))
    assert len(history) == 2
    assert [checkpoint_step(c) for c in list_checkpoints(run_dir)] == [2]
    assert [r["step"] for r in read_metrics(run_dir)] == [1, 2]
    # A stop that is already pending when the last finished step is checkpointed ends the run at once.
    with Trainer(cfg, resume=True, show_progress=False) as trainer:
        assert trainer.train(should_stop=lambda: True) == [] and trainer.step == 2


def test_sigint_during_compare_stops_the_arm_in_flight_and_starts_no_other(tmp_path: Path):
    out = tmp_path / "cmp"
    args = ["compare", "--preset", "tabletop", "--steps", "500", "--seeds", "0", "--algos", "srpo", "grpo",
            "--out", str(out)]
    for item in [*TINY, "num_eval_episodes_per_task=1", "eval_every=1000"]:
        args += ["--set", item]
    proc = subprocess.Popen([SRPO, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = out / "srpo" / "seed0"
    wait_for(lambda: any(r["step"] >= 1 for r in read_metrics(run_dir)), proc, "a finished srpo step")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "srpo compare: stopped on SIGINT; re-run the same command to resume" in stderr
    step = max(r["step"] for r in read_metrics(run_dir))
    assert [checkpoint_step(c) for c in list_checkpoints(run_dir)][-1] == step  # the step in flight is kept
    assert f"srpo seed0 at step {step}/500" in stdout and not (out / "grpo").exists()
    assert json.loads((out / "compare.json").read_text())["unfinished"] == [f"srpo seed0 at step {step}/500"]
