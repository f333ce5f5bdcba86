"""SFT: chunk padding, demo selection, augmentation, and a short real run on tabletop demos."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from policy_helpers import tiny_config

from srpo.cli import build_parser, sft_config_from_args
from srpo.config.base import ConfigError
from srpo.config.env import TabletopConfig
from srpo.config.policy import PolicyConfig
from srpo.config.sft import SFTConfig, SFTRunConfig
from srpo.envs.tabletop import TabletopEnvFactory, record_tabletop_demos
from srpo.errors import InputFileError
from srpo.policies.compact import CompactVLA
from srpo.sft import (
    action_chunks,
    augment_images,
    imitation_accuracy,
    load_demos,
    run_sft,
    select_demos,
    train_sft,
)
from srpo.types import Demo


def _demo(task_id: int, success: bool = True, steps: int = 3) -> Demo:
    return Demo(np.zeros((steps, 8, 8, 3), np.uint8), np.zeros((steps, 2), np.float32),
                np.zeros((steps, 7), np.float32), f"task {task_id}", task_id, "s", success)


def test_action_chunks_pad_by_repeating_the_final_action() -> None:
    actions = np.arange(4, dtype=np.float32)[:, None].repeat(7, 1)  # rows 0, 1, 2, 3
    chunks = action_chunks(actions, chunk_size=3)
    assert chunks.shape == (4, 3, 7)
    assert chunks[:, :, 0].tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 3], [3, 3, 3]]


def test_select_demos_takes_first_successful_per_task() -> None:
    demos = [_demo(0, success=False), _demo(0), _demo(1), _demo(0), _demo(1)]
    chosen = select_demos(demos, num_per_task=1)
    assert [(d.task_id, d is demos[i]) for d, i in zip(chosen, [1, 2], strict=True)] == [(0, True), (1, True)]
    expected = r"task \('s', 0\) has 2 usable demos \(1 unsuccessful skipped\).*num_demos_per_task=3"
    with pytest.raises(InputFileError, match=expected):
        select_demos(demos, num_per_task=3)
    with pytest.raises(InputFileError, match="no demonstrations given"):
        select_demos([], num_per_task=1)


def test_demos_without_steps_are_no_dataset() -> None:
    from srpo.policies.tokenizer import ActionTokenizer
    from srpo.sft import build_dataset

    with pytest.raises(InputFileError, match="the selected demonstrations hold no steps"):
        build_dataset([_demo(0, steps=0), _demo(1, steps=0)], ActionTokenizer.identity(), chunk_size=4)
    assert len(build_dataset([_demo(0, steps=0), _demo(1)], ActionTokenizer.identity(), chunk_size=4).tokens) == 3


def test_augment_images_is_identity_when_off_and_random_when_on() -> None:
    x = torch.rand(4, 3, 16, 16)
    same = augment_images(x, crop_scale=1.0, jitter=0.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(same, x)
    a = augment_images(x, 0.8, 0.3, torch.Generator().manual_seed(0))
    b = augment_images(x, 0.8, 0.3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert (a - x).abs().mean() > 0.01


def test_sft_on_tabletop_demos_lowers_loss_and_imitates(tmp_path: Path) -> None:
    demos = record_tabletop_demos(TabletopEnvFactory(TabletopConfig(image_size=32)), [0, 1], 1, seed=0)
    assert all(d.success for d in demos)
    policy = CompactVLA(tiny_config(state_dim=4))
    before = imitation_accuracy(policy, demos)
    config = SFTConfig(num_steps=100, batch_size=16, learning_rate=3e-3, augment=False, progress=False,
                       log_every=20, checkpoint_dir=str(tmp_path / "sft"), checkpoint_every=50)
    result = train_sft(policy, demos, config)
    losses = [h["loss/sft"] for h in result.history]
    assert losses[-1] < 0.3 * losses[0], losses
    after = imitation_accuracy(policy, demos)
    assert after > 0.75 and after > before + 0.5, (before, after)
    acts = np.concatenate([d.actions for d in demos])
    np.testing.assert_allclose(policy.tokenizer.q99, np.quantile(acts, 0.99, axis=0), rtol=1e-6)
    # Checkpoints: one intermediate, the final one, and the metrics; the final one reproduces the policy.
    assert sorted(p.name for p in (tmp_path / "sft").iterdir()) == ["final", "sft_metrics.json", "step_000050"]
    loaded = CompactVLA.from_pretrained(result.checkpoint)  # type: ignore[arg-type]
    assert imitation_accuracy(loaded, demos) == pytest.approx(after)


def test_run_sft_through_its_parser(tmp_path: Path) -> None:
    args = build_parser().parse_args([
        "sft", "--env", "tabletop", "--tasks", "0", "--steps", "3", "--batch-size", "4", "--vision-encoder",
        "conv", "--text-encoder", "hashed", "--image-size", "32", "--out", str(tmp_path / "run"), "--no-progress",
    ])
    result = run_sft(sft_config_from_args(args))
    assert result.checkpoint == tmp_path / "run" / "final"
    loaded = CompactVLA.from_pretrained(tmp_path / "run" / "final")
    assert loaded.config.state_dim == 4 and loaded.config.image_size == 32


def test_run_sft_builds_the_transformer_size_its_flags_ask_for(tmp_path: Path) -> None:
    """--d-model/--num-layers/--num-heads/--ff-dim size a fresh policy, and the checkpoint keeps that size."""
    args = build_parser().parse_args([
        "sft", "--env", "tabletop", "--tasks", "0", "--steps", "2", "--batch-size", "4", "--vision-encoder",
        "conv", "--text-encoder", "hashed", "--image-size", "32", "--d-model", "48", "--num-layers", "2",
        "--num-heads", "6", "--ff-dim", "40", "--out", str(tmp_path / "run"), "--no-progress",
        "--eval-episodes", "0",
    ])
    result = run_sft(sft_config_from_args(args))
    loaded = CompactVLA.from_pretrained(result.checkpoint)
    c = loaded.config
    assert (c.d_model, c.num_layers, c.num_heads, c.ff_dim) == (48, 2, 6, 40)
    assert len(loaded.transformer.layers) == 2
    assert loaded.transformer.layers[0].self_attn.num_heads == 6
    assert (loaded.transformer.layers[0].linear1.in_features, loaded.transformer.layers[0].linear1.out_features) \
        == (48, 40)
    d = PolicyConfig()  # the size the flags replace
    default = CompactVLA(dataclasses.replace(c, checkpoint=None, d_model=d.d_model, num_layers=d.num_layers,
                                             num_heads=d.num_heads, ff_dim=d.ff_dim))
    assert sum(p.numel() for p in default.parameters()) != sum(p.numel() for p in loaded.parameters())


def test_sft_size_flags_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"multiple of policy\.num_heads=4"):
        SFTRunConfig(out="x", env="tabletop", d_model=30)
    with pytest.raises(ConfigError, match=r"multiple of policy\.num_heads=5"):
        SFTRunConfig(out="x", env="tabletop", num_heads=5)
    with pytest.raises(ConfigError, match="num_layers"):
        SFTRunConfig(out="x", env="tabletop", num_layers=0)
    with pytest.raises(ConfigError, match=r"drop --ff-dim or --init"):
        SFTRunConfig(out="x", env="tabletop", init="ckpt", ff_dim=64)
    assert SFTRunConfig(out="x", env="tabletop", d_model=256, num_heads=8).d_model == 256


def test_run_sft_tabletop_recipe_options(tmp_path: Path) -> None:
    """The benchmark's recipe through the CLI: keypoint encoder, object state, random-walk demos from a larger
    layout pool (never a held-out one), chunk size."""
    args = build_parser().parse_args([
        "sft", "--env", "tabletop", "--tasks", "1", "--num-demos-per-task", "3", "--steps", "2", "--batch-size", "4",
        "--vision-encoder", "conv_keypoints", "--fine-tune-vision", "--text-encoder", "hashed", "--image-size", "32",
        "--chunk-size", "2", "--object-state", "--random-prefix", "10", "--demo-noise", "0.1", "--demo-layouts",
        "500", "--out", str(tmp_path / "run"), "--no-progress",
    ])
    demos = load_demos(sft_config_from_args(args))
    assert len(demos) >= 3 and all(d.states.shape[1] == 14 for d in demos)
    held_out = {TabletopEnvFactory(TabletopConfig(image_size=32)).make(1).reset(i).image.tobytes()
                for i in range(40, 50)}
    assert not any(d.images[0].tobytes() in held_out for d in demos)
    result = run_sft(sft_config_from_args(args))
    assert result.checkpoint is not None
    loaded = CompactVLA.from_pretrained(result.checkpoint)
    assert (loaded.config.state_dim, loaded.config.chunk_size) == (14, 2)
    assert loaded.config.vision_encoder == "conv_keypoints"


def test_run_sft_reads_a_folder_of_hdf5_demo_files(tmp_path: Path) -> None:
    from srpo.demos import write_demos

    demos = record_tabletop_demos(TabletopEnvFactory(TabletopConfig(image_size=32)), [0, 1], 1, seed=0)
    folder = tmp_path / "demos"
    folder.mkdir()
    for d in demos:  # LIBERO files hold 8-D proprio: pad the tabletop's 4-D state
        d.states = np.concatenate([d.states, np.zeros((len(d.states), 4), np.float32)], axis=1)
        write_demos(folder / f"task_{d.task_id}_demo.hdf5", [d])
    args = build_parser().parse_args([
        "sft", "--demos", str(folder), "--steps", "2", "--batch-size", "4", "--vision-encoder", "conv",
        "--text-encoder", "hashed", "--image-size", "32", "--out", str(tmp_path / "run"), "--no-progress",
    ])
    result = run_sft(sft_config_from_args(args))
    assert result.metrics["sft/num_tasks"] == 2 and result.metrics["sft/num_demos"] == 2
    assert result.metrics["sft/num_samples"] == sum(len(d.actions) for d in demos)
    assert CompactVLA.from_pretrained(tmp_path / "run" / "final").config.state_dim == 8
