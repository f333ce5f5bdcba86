"""reward.reference_source="external" in the online trainer: expert successes embedded once, every failure
compared with them, kept for resume, never recorded from evaluation layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from srpo import build
from srpo.build import EXTERNAL_REFERENCE_FILE, make_env_factory, make_external_reference, make_reward_encoder
from srpo.config.train import TrainConfig, load_config
from srpo.demos import write_demos
from srpo.errors import InputFileError, SrpoError
from srpo.evaluate import init_state_split
from srpo.run_dir import read_metrics
from srpo.trainer import Trainer
from srpo.types import Demo
from test_determinism import TINY

# The scripted expert needs ~40 steps at the tabletop's action scale; TINY's 16-step horizon is too short for it.
EXTERNAL = ["reward.reference_source=external", "external_reference.episodes_per_task=3", "env.tabletop.max_steps=60"]


def _cfg(run_dir: Path, *extra: str) -> TrainConfig:
    return load_config(preset="tabletop", overrides=[*TINY, f"run_dir={run_dir}", "num_steps=1", *EXTERNAL, *extra])


def test_every_failure_is_shaped_against_the_expert_set_and_the_set_is_kept(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "run")
    with Trainer(cfg, show_progress=False) as trainer:
        assert trainer.external is not None and sorted(trainer.external) == [0, 1]
        assert all(v.shape == (3, trainer.encoder.dim) for v in trainer.external.values())  # type: ignore[union-attr]
        trainer.train()
    step = next(m for m in read_metrics(tmp_path / "run") if m["step"] == 1)
    # A random policy never succeeds: with the batch reference nothing would be shaped; the expert set shapes all.
    assert step["rollout/success_rate"] == 0.0
    assert step["reward/num_failures_shaped"] == step["rollout/num_trajectories"] > 0
    assert step["reward/failure_progress_max"] > step["reward/failure_progress_mean"] - 1e-9 > 0.0
    saved = np.load(tmp_path / "run" / EXTERNAL_REFERENCE_FILE)
    assert sorted(saved.files) == ["task_0", "task_1"]


def test_resume_reads_the_saved_set_instead_of_recording_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    cfg = _cfg(tmp_path / "run")
    factory = make_env_factory(cfg)
    encoder = make_reward_encoder(cfg)
    assert encoder is not None
    states = {s.task_id: init_state_split(cfg, s.num_init_states, "train") for s in factory.task_specs()}
    first = make_external_reference(cfg, encoder, factory, states, tmp_path / "run")

    def no_recording(*args: object, **kwargs: object) -> None:
        raise AssertionError("recorded again")

    import srpo.recording

    monkeypatch.setattr(srpo.recording, "record_labelled_set", no_recording)
    again = make_external_reference(cfg, encoder, factory, states, tmp_path / "run")
    for task in first:
        np.testing.assert_array_equal(first[task], again[task])
    # A file made with another encoder (another dimension) is refused, with the fix.
    np.savez(tmp_path / "run" / EXTERNAL_REFERENCE_FILE, task_0=np.zeros((2, 5)), task_1=np.zeros((2, 5)))
    with pytest.raises(InputFileError, match="delete it to re-embed"):
        make_external_reference(cfg, encoder, factory, states, tmp_path / "run")


def test_the_expert_starts_from_training_states_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(tmp_path / "run")
    seen: list[list[int]] = []
    real = build.make_external_reference

    import srpo.recording

    record = srpo.recording.record_labelled_set

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(list(kwargs["init_state_ids"]))  # type: ignore[call-overload]
        return record(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(srpo.recording, "record_labelled_set", spy)
    factory = make_env_factory(cfg)
    encoder = make_reward_encoder(cfg)
    assert encoder is not None
    states = {s.task_id: init_state_split(cfg, s.num_init_states, "train") for s in factory.task_specs()}
    real(cfg, encoder, factory, states, tmp_path / "run")
    evaluation = set(init_state_split(cfg, factory.task_specs()[0].num_init_states, "eval"))
    assert len(seen) == 2 and all(ids and not set(ids) & evaluation for ids in seen)


def test_hdf5_demos_as_the_reference(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)

    def demo(task: int, success: bool) -> Demo:
        return Demo(images=rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8), states=np.zeros((6, 8), np.float32),
                    actions=np.zeros((6, 7), np.float32), instruction="x", task_id=task, suite="s", success=success)

    demos = tmp_path / "demos"
    demos.mkdir()
    write_demos(demos / "task0.hdf5", [demo(0, True), demo(0, True), demo(0, False)])
    cfg = _cfg(tmp_path / "run", f"external_reference.demos={demos}", "external_reference.image_key=agentview_rgb")
    factory = make_env_factory(cfg)
    encoder = make_reward_encoder(cfg)
    assert encoder is not None
    states = {s.task_id: init_state_split(cfg, s.num_init_states, "train") for s in factory.task_specs()}
    # Task 1 has no demo: refused, naming the task and the folder.
    with pytest.raises(InputFileError, match=r"task\(s\) \[1\].*demos"):
        make_external_reference(cfg, encoder, factory, states, tmp_path / "run")
    write_demos(demos / "task1.hdf5", [demo(1, True)])
    reference = make_external_reference(cfg, encoder, factory, states, tmp_path / "run2")
    assert reference[0].shape == (2, encoder.dim) and reference[1].shape == (1, encoder.dim)  # failures dropped
    with pytest.raises(SrpoError, match="longer horizon"):
        short = _cfg(tmp_path / "run4", "env.tabletop.max_steps=5")
        make_external_reference(short, encoder, make_env_factory(short), states, tmp_path / "run4")
    with pytest.raises(InputFileError, match="does not exist"):
        make_external_reference(_cfg(tmp_path / "run3", "external_reference.demos=nowhere"), encoder, factory,
                                states, tmp_path / "run3")
