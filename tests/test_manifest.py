"""Checkpoint manifests (sizes + SHA-256 beside every checkpoint) and resuming from the newest intact one."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from srpo.errors import CheckpointCorruptError
from srpo.manifest import MANIFEST_FILE, read_manifest, verify_manifest, write_manifest
from srpo.resume import newest_intact, read_trainer_state


def make_checkpoint(root: Path) -> Path:
    (root / "policy").mkdir(parents=True)
    (root / "policy" / "model.safetensors").write_bytes(b"\x01" * 1000)
    (root / "trainer_state.pt").write_bytes(b"state")
    write_manifest(root / "policy")
    write_manifest(root)
    return root


def test_manifest_lists_every_file_with_size_and_checksum(tmp_path: Path):
    ckpt = make_checkpoint(tmp_path / "ckpt")
    files = read_manifest(ckpt)
    assert files is not None
    assert sorted(files) == ["policy/manifest.json", "policy/model.safetensors", "trainer_state.pt"]
    assert files["policy/model.safetensors"]["size"] == 1000
    assert verify_manifest(ckpt) and verify_manifest(ckpt / "policy")


@pytest.mark.parametrize(("damage", "message"), [
    (lambda p: p.write_bytes(p.read_bytes()[:500]), r"model\.safetensors is 500 bytes but its manifest says 1000"),
    (lambda p: p.write_bytes(b"\x02" + p.read_bytes()[1:]), r"model\.safetensors does not match the checksum"),
    (lambda p: p.unlink(), r"model\.safetensors is missing \(listed in"),
])
def test_damage_is_named(tmp_path: Path, damage, message: str):
    ckpt = make_checkpoint(tmp_path / "ckpt")
    damage(ckpt / "policy" / "model.safetensors")
    with pytest.raises(CheckpointCorruptError, match=message):
        verify_manifest(ckpt)


def test_unreadable_or_foreign_manifest(tmp_path: Path):
    ckpt = make_checkpoint(tmp_path / "ckpt")
    (ckpt / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(CheckpointCorruptError, match="is not valid JSON"):
        verify_manifest(ckpt)
    (ckpt / MANIFEST_FILE).write_text(json.dumps({"files": {}}))
    with pytest.raises(CheckpointCorruptError, match="is not an srpo checkpoint manifest"):
        verify_manifest(ckpt)
    (ckpt / MANIFEST_FILE).write_text(json.dumps({"format": "srpo-manifest", "version": 99, "files": {}}))
    with pytest.raises(CheckpointCorruptError, match="manifest version 99"):
        verify_manifest(ckpt)


def test_no_manifest_is_allowed_unless_required(tmp_path: Path):
    (tmp_path / "old").mkdir()
    assert verify_manifest(tmp_path / "old") is False
    with pytest.raises(CheckpointCorruptError, match=r"has no manifest\.json"):
        verify_manifest(tmp_path / "old", required=True)


def test_files_added_later_do_not_damage_a_checkpoint(tmp_path: Path):
    ckpt = make_checkpoint(tmp_path / "ckpt")
    (ckpt / "NOTES.txt").write_text("best so far")
    assert verify_manifest(ckpt)


def test_trainer_state_is_loaded_without_pickled_code(tmp_path: Path):
    path = tmp_path / "trainer_state.pt"
    torch.save({"step": 3, "optimizer": {}, "torch_rng": torch.get_rng_state(), "hook": print}, path)
    with pytest.raises(CheckpointCorruptError, match="not a readable trainer state"):
        read_trainer_state(path)
    path.write_bytes(b"garbage\n")
    with pytest.raises(CheckpointCorruptError, match="not a readable trainer state"):
        read_trainer_state(path)
    torch.save({"step": 3}, path)
    with pytest.raises(CheckpointCorruptError, match="expected keys step, optimizer, torch_rng"):
        read_trainer_state(path)
    torch.save({"step": 3, "optimizer": {}, "torch_rng": torch.get_rng_state()}, path)
    assert read_trainer_state(path)["step"] == 3


def test_newest_intact_skips_damaged_checkpoints_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    ckpts = [make_checkpoint(tmp_path / f"ckpt-{i}") for i in range(3)]
    (ckpts[2] / "trainer_state.pt").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="srpo.resume"):
        chosen, loaded = newest_intact(ckpts, lambda p: p.name)
    assert chosen == ckpts[1] and loaded == "ckpt-1"
    assert f"checkpoint {ckpts[2]} is damaged" in caplog.text
    for ckpt in ckpts[:2]:
        (ckpt / "trainer_state.pt").write_bytes(b"garbage")
    expected = "no intact checkpoint to resume from: ckpt-2: .*; ckpt-1: .*; ckpt-0"
    with pytest.raises(CheckpointCorruptError, match=expected):
        newest_intact(ckpts, lambda p: p.name)


def test_trainer_resumes_from_the_newest_intact_checkpoint(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    from srpo.config.train import load_config
    from srpo.policies.compact import CompactVLA
    from srpo.run_dir import CHECKPOINT_PREFIX, list_checkpoints
    from srpo.trainer import Trainer

    cfg = load_config(preset="tabletop", overrides=[
        "env.tabletop.num_tasks=2", "env.tabletop.max_steps=8", "env.tabletop.image_size=32", "policy.image_size=32",
        "policy.d_model=32", "policy.num_layers=1", "policy.num_heads=2", "policy.ff_dim=64", "policy.chunk_size=4",
        "algo_name=grpo", "algo.group_size=2", "algo.num_prompts_per_step=2", "num_eval_episodes_per_task=0",
        "num_videos_per_step=0", "tensorboard=false", "num_steps=2", "checkpoint_every=1", "reward.memory_size=4",
        f"run_dir={tmp_path / 'run'}"])
    with Trainer(cfg, show_progress=False) as trainer:
        trainer.train()
    first, second = list_checkpoints(Path(cfg.run_dir))
    for ckpt in (first, second):
        verify_manifest(ckpt, required=True)
        verify_manifest(ckpt / "policy", required=True)
    CompactVLA.from_pretrained(second / "policy")  # verified and loaded
    (second / "trainer_state.pt").write_bytes(b"garbage\n")
    with caplog.at_level(logging.WARNING, logger="srpo.resume"), \
            Trainer(replace(cfg, num_steps=3), resume=True, show_progress=False) as trainer:
        assert trainer.step == 1
    assert f"{CHECKPOINT_PREFIX}000002 is damaged" in caplog.text
