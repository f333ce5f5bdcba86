"""More input checks no other test reaches: each bad input gets its own error type and a message that names it.

One test per check, through the public function or class, without LIBERO, a GPU, Ray or the network.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from srpo.build import start_run
from srpo.config.base import ConfigError
from srpo.config.encoder import EncoderConfig
from srpo.config.libero import LiberoConfig
from srpo.config.policy import PolicyConfig
from srpo.config.train import load_config
from srpo.demos import DemoExtras, read_demos, write_demos
from srpo.envs.mesh_lod import cluster_faces
from srpo.envs.perturbations import bddl_problem, read_plus_task_map
from srpo.envs.remote import ensure_liberoplus_assets
from srpo.errors import CheckpointCorruptError, InputFileError, MissingFileError, SrpoError
from srpo.lerobot import DatasetEpisode, LeRobotWriter, read_lerobot_dataset
from srpo.policies.base import PolicyInput
from srpo.policies.compact import CompactVLA
from srpo.policies.openvla_oft import OpenVLAOFTPolicy, load_norm_stats
from srpo.policies.tokenizer import ActionTokenizer
from srpo.resume import read_trainer_state
from srpo.reward.encoders.efficientnet import EfficientNetEncoder, load_efficientnet_lite0
from srpo.reward.encoders.vjepa2 import VJEPA2Encoder, load_vjepa2
from srpo.types import Demo
from tiny_config import tiny_tabletop

# A CompactVLA small enough to build in well under a second (conv vision, hashed text: no weights to load).
TINY_POLICY = {"vision_encoder": "conv", "image_size": 32, "text_encoder": "hashed", "state_dim": 3, "d_model": 32,
               "num_heads": 2, "num_layers": 1, "ff_dim": 64, "chunk_size": 2, "freeze_vision": False}


def _demo(task_id: int = 3, num_steps: int = 2) -> Demo:
    return Demo(images=np.zeros((num_steps, 8, 6, 3), np.uint8), states=np.zeros((num_steps, 8), np.float32),
                actions=np.zeros((num_steps, 7), np.float32), instruction="put the bowl on the plate",
                task_id=task_id, suite="libero_spatial", success=True)


def _batch(batch_size: int = 2) -> PolicyInput:
    rng = np.random.default_rng(0)
    return PolicyInput(images=rng.integers(0, 256, (batch_size, 32, 32, 3), dtype=np.uint8),
                       states=rng.standard_normal((batch_size, 3)).astype(np.float32),
                       instructions=["put the block on the plate"] * batch_size)


def _oft_args() -> dict:
    """Everything OpenVLAOFTPolicy's constructor takes, on a one-weight stand-in model (it is not run)."""
    return {"model": nn.Linear(1, 1), "tokenize": lambda prompt: [1], "preprocess_images": torch.from_numpy,
            "action_tokenizer": ActionTokenizer.identity()}


# -- srpo.config.libero --------------------------------------------------------------------------------------


def test_libero_init_state_ids_names_an_unknown_split() -> None:
    cfg = LiberoConfig()
    assert cfg.init_state_ids("eval") == list(range(40, 50))
    with pytest.raises(ValueError, match=r"unknown init-state split 'test': choose 'train' or 'eval'"):
        cfg.init_state_ids("test")  # type: ignore[arg-type]


# -- srpo.demos ------------------------------------------------------------------------------------------------


def test_write_demos_refuses_an_empty_list(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"write_demos needs at least one Demo"):
        write_demos(tmp_path / "x.hdf5", [])
    assert not (tmp_path / "x.hdf5").exists()


def test_write_demos_refuses_extras_that_do_not_pair_with_the_demos(tmp_path: Path) -> None:
    write_demos(tmp_path / "ok.hdf5", [_demo()], extras=[DemoExtras()])
    with pytest.raises(ValueError, match=r"extras has 1 entries for 2 demos; give one per demo or None"):
        write_demos(tmp_path / "x.hdf5", [_demo(), _demo()], extras=[DemoExtras()])
    assert not (tmp_path / "x.hdf5").exists()


def test_read_demos_names_an_unknown_image_convention(tmp_path: Path) -> None:
    path = tmp_path / "task.hdf5"
    write_demos(path, [_demo()])
    assert len(read_demos(path)) == 1
    with h5py.File(path, "a") as f:
        f["data"].attrs["macros_image_convention"] = "directx"
    with pytest.raises(ValueError, match=r"task\.hdf5: unknown macros_image_convention 'directx': expected "
                                         r"'opengl' or 'opencv'"):
        read_demos(path)


# -- srpo.envs.mesh_lod, srpo.envs.perturbations, srpo.envs.remote ---------------------------------------------


def test_cluster_faces_refuses_vertices_that_are_not_3d_points() -> None:
    vert = np.random.default_rng(0).random((4, 3))
    face = np.array([[0, 1, 2], [1, 2, 3]])
    assert cluster_faces(vert, face, face, face, grid=4)[0].shape[1] == 3
    with pytest.raises(ValueError, match=r"vert must have shape \(V, 3\), got \(4, 2\)"):
        cluster_faces(vert[:, :2], face, face, face, grid=4)


def test_read_plus_task_map_names_a_file_without_the_map(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text("libero_task_map = {'libero_spatial': ['a_task']}\n")
    assert read_plus_task_map(good) == {"libero_spatial": ["a_task"]}
    bad = tmp_path / "other.py"
    bad.write_text("task_map = {'libero_spatial': ['a_task']}\n")
    with pytest.raises(ValueError, match=r"other\.py: no `libero_task_map = \{\.\.\.\}` assignment found"):
        read_plus_task_map(bad)


def test_bddl_problem_names_a_file_without_a_problem_clause(tmp_path: Path) -> None:
    good = tmp_path / "good.bddl"
    good.write_text("(define (problem LIBERO_Tabletop_Manipulation)\n  (:domain robosuite)\n)\n")
    assert bddl_problem(good) == "libero_tabletop_manipulation"
    bad = tmp_path / "bad.bddl"
    bad.write_text("(:domain robosuite)\n")
    with pytest.raises(ValueError, match=r"bad\.bddl: no \(define \(problem \.\.\.\)\) clause"):
        bddl_problem(bad)


@pytest.mark.skipif(importlib.util.find_spec("liberoplus") is not None, reason="checks the message without it")
def test_liberoplus_assets_name_the_missing_package() -> None:
    with pytest.raises(SrpoError, match=r"liberoplus is not installed in this environment: run `make robust`"):
        ensure_liberoplus_assets(None)


# -- srpo.policies ---------------------------------------------------------------------------------------------


def test_policy_input_refuses_batches_of_different_sizes() -> None:
    assert len(_batch(2).instructions) == 2
    with pytest.raises(ValueError, match=r"PolicyInput batch sizes differ: images 2, states 1, instructions 2"):
        PolicyInput(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((1, 3), np.float32), ["a", "b"])


def test_compact_vla_refuses_the_config_of_another_policy_kind() -> None:
    with pytest.raises(ValueError, match=r"CompactVLA needs policy\.kind='compact', got 'openvla_oft'"):
        CompactVLA(PolicyConfig(kind="openvla_oft", checkpoint="checkpoints/oft"))


def test_compact_vla_refuses_an_image_transform_that_changes_the_image_size() -> None:
    torch.manual_seed(0)
    policy = CompactVLA(PolicyConfig(**TINY_POLICY))  # type: ignore[arg-type]
    batch = _batch()
    assert policy.action_logits(batch, image_transform=lambda x: x.flip(-1)).shape == (2, 14, policy.num_bins)
    with pytest.raises(ValueError, match=r"got 3 context tokens, expected 6: images must be resized to "
                                         r"policy\.image_size=32"):
        policy.action_logits(batch, image_transform=lambda x: x[..., :16, :16])


def test_load_norm_stats_names_a_checkpoint_without_them(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"dataset_statistics\.json is missing: OpenVLA checkpoints carry "
                                             r"their action norm stats there"):
        load_norm_stats(tmp_path, None)


def test_openvla_oft_policy_refuses_an_unknown_attention() -> None:
    assert OpenVLAOFTPolicy(**_oft_args()).attention == "bidirectional"
    with pytest.raises(ValueError, match=r"attention='sideways': choose 'bidirectional' or 'causal'"):
        OpenVLAOFTPolicy(**_oft_args(), attention="sideways")  # type: ignore[arg-type]


def test_openvla_oft_policy_refuses_norm_stats_of_another_action_size() -> None:
    six_dims = ActionTokenizer(q01=-np.ones(6), q99=np.ones(6), gripper_dim=None)
    args = {**_oft_args(), "action_tokenizer": six_dims}
    with pytest.raises(ValueError, match=r"norm stats have 6 dims, policy has 7"):
        OpenVLAOFTPolicy(**args)


def test_openvla_oft_policy_cannot_save_without_a_source_checkpoint(tmp_path: Path) -> None:
    policy = OpenVLAOFTPolicy(**_oft_args())
    with pytest.raises(ValueError, match=r"this OpenVLAOFTPolicy was not loaded from a checkpoint directory; "
                                         r"cannot copy its remote code and processor files"):
        policy.save_pretrained(tmp_path / "ckpt")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_openvla_oft_from_config_refuses_a_compact_config() -> None:
    with pytest.raises(ConfigError, match=r"policy\.kind='openvla_oft' needs policy\.checkpoint"):
        OpenVLAOFTPolicy.from_config(PolicyConfig(**TINY_POLICY))  # type: ignore[arg-type]


def test_openvla_oft_from_config_refuses_another_chunk_size(tmp_path: Path) -> None:
    config = PolicyConfig(kind="openvla_oft", checkpoint=str(tmp_path), chunk_size=4, device="cpu")
    with pytest.raises(ConfigError, match=r"policy\.chunk_size=4, policy\.action_dim=7: OpenVLA-OFT checkpoints "
                                          r"decode 8 × 7; set those values"):
        OpenVLAOFTPolicy.from_config(config)


# -- srpo.reward.encoders --------------------------------------------------------------------------------------


def test_efficientnet_weights_name_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=r"EfficientNet-lite0 weights not found at .*nope\.pth\. "):
        load_efficientnet_lite0(str(tmp_path / "nope.pth"))


def test_efficientnet_encoder_refuses_the_config_of_another_encoder() -> None:
    with pytest.raises(ValueError, match=r"EfficientNetEncoder needs encoder\.name='efficientnet', got 'pixel'"):
        EfficientNetEncoder(EncoderConfig(name="pixel"), model=nn.Identity())


@pytest.mark.parametrize(("videos", "match"), [
    ([], r"no videos to encode: pass at least one \(T, H, W, 3\) uint8 video"),
    ([np.zeros((0, 8, 8, 3), np.uint8)], r"video 0 has zero frames; a trajectory without frames cannot be embedded"),
])
def test_efficientnet_encoder_refuses_nothing_to_embed(videos: list[np.ndarray], match: str) -> None:
    # The checks run before any frame reaches the network, so a stand-in model is enough.
    encoder = EfficientNetEncoder(EncoderConfig(name="efficientnet", num_frames=2, device="cpu"), model=nn.Identity())
    with pytest.raises(ValueError, match=match):
        encoder.encode(videos)


def test_load_vjepa2_names_missing_weights() -> None:
    with pytest.raises(MissingFileError, match=r"encoder\.weights is not set\. "):
        load_vjepa2(EncoderConfig(name="pixel"))


def test_vjepa2_encoder_refuses_the_config_of_another_encoder() -> None:
    with pytest.raises(ValueError, match=r"VJEPA2Encoder needs encoder\.name='vjepa2', got 'efficientnet'"):
        VJEPA2Encoder(nn.Identity(), EncoderConfig(name="efficientnet"))  # type: ignore[arg-type]


# -- srpo.build ------------------------------------------------------------------------------------------------


def test_start_run_refuses_a_policy_with_nothing_to_train(tmp_path: Path) -> None:
    cfg = load_config(preset="tabletop", overrides=tiny_tabletop(8, "tensorboard=false", "torch_num_threads=0",
                                                                 f"run_dir={tmp_path / 'run'}"))
    torch.manual_seed(0)
    policy = CompactVLA(cfg.policy)
    policy.requires_grad_(False)
    with pytest.raises(SrpoError, match=r"the policy has no trainable parameters: unfreeze some \(e\.g\. "
                                        r"policy\.freeze_vision=false"):
        start_run(cfg, resume=False, policy=policy)
    assert not (tmp_path / "run" / "config.yaml").exists()
    policy.requires_grad_(True)
    start = start_run(cfg, resume=False, policy=policy)
    assert start.step == 0 and start.policy is policy
    start.metrics_log.close()


# -- bad input that escaped as a traceback before (each fixed with the check these tests hold)


@pytest.mark.parametrize("seed", [-1, 2**63])
def test_config_refuses_a_seed_numpy_or_torch_cannot_take(seed: int) -> None:
    assert load_config(preset="tabletop", overrides=[f"seed={2**63 - 1}"]).seed == 2**63 - 1
    with pytest.raises(ConfigError, match=rf"seed={seed} is invalid: set it to an int in \[0, 2\*\*63\)"):
        load_config(preset="tabletop", overrides=[f"seed={seed}"])


def test_trainer_state_with_mixed_key_types_is_named_not_a_type_error(tmp_path: Path) -> None:
    path = tmp_path / "trainer_state.pt"
    torch.save({1: 0, "x": 0}, path)
    with pytest.raises(CheckpointCorruptError, match=r"is not an srpo trainer state: expected keys .*found \['1', "
                                                     r"'x'\]"):
        read_trainer_state(path)


def _lerobot(root: Path, chunk: bool = False) -> Path:
    actions = np.zeros((2, 2, 7) if chunk else (2, 7), np.float32)
    LeRobotWriter(root, robot_type="srpo-test").add([DatasetEpisode(
        0, 0, "put the bowl on the plate", np.zeros((2, 16, 16, 3), np.uint8), np.zeros((2, 4), np.float32),
        actions, success=True)])
    return root


def _edit_info(root: Path, **fields: object) -> None:
    info = json.loads((root / "meta" / "info.json").read_text())
    for key, value in fields.items():
        if value is None:
            del info[key]
        else:
            info[key] = value
    (root / "meta" / "info.json").write_text(json.dumps(info))


@pytest.mark.parametrize(("fields", "match"), [
    ({"fps": "ten"}, r"fps must be a positive number, got 'ten'"),
    ({"fps": 0}, r"fps must be a positive number, got 0"),
    ({"total_frames": -3}, r"total_frames must be an int >= 0, got -3"),
    ({"features": []}, r"features must map each feature name to an object"),
    ({"features": {"observation.images.image": "video"}}, r"features must map each feature name to an object"),
    ({"features": {"action": {"dtype": "float32", "shape": "7"}}}, r"features\.action\.shape must be a list of "
                                                                   r"positive ints, got '7'"),
])
def test_lerobot_info_fields_of_the_wrong_kind_are_input_errors(tmp_path: Path, fields: dict, match: str) -> None:
    root = _lerobot(tmp_path / "ds")
    assert len(read_lerobot_dataset(root)) == 1
    _edit_info(root, **fields)
    with pytest.raises(InputFileError, match=match):
        read_lerobot_dataset(root)
    with pytest.raises(InputFileError, match=match):
        LeRobotWriter(root, robot_type="srpo-test")


def test_lerobot_writer_refuses_an_info_without_its_totals(tmp_path: Path) -> None:
    root = _lerobot(tmp_path / "ds")
    _edit_info(root, total_episodes=None)
    with pytest.raises(InputFileError, match=r"info\.json lacks \['total_episodes'\]: it was not written by a "
                                             r"LeRobot v3 writer"):
        LeRobotWriter(root, robot_type="srpo-test")


def test_lerobot_action_shape_that_does_not_fit_the_rows_is_named(tmp_path: Path) -> None:
    root = _lerobot(tmp_path / "ds", chunk=True)
    assert read_lerobot_dataset(root)[0].actions.shape == (2, 2, 7)
    info = json.loads((root / "meta" / "info.json").read_text())
    info["features"]["action"]["shape"] = [3, 7]
    (root / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(SrpoError, match=r"episode 0's 'action' rows hold 14 values each, but meta/info\.json gives "
                                        r"the feature shape \[3, 7\]"):
        read_lerobot_dataset(root)


def test_efficientnet_weights_that_are_not_weights_are_input_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InputFileError, match=r"junk\.pth is not a readable torch weights file"):
        load_efficientnet_lite0(str(junk))
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(InputFileError, match=r"other\.pth does not hold EfficientNet-lite0 weights"):
        load_efficientnet_lite0(str(other))


def test_vjepa2_original_checkpoint_that_is_not_torch_is_an_input_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InputFileError, match=r"junk\.pt is not a readable torch checkpoint"):
        load_vjepa2(EncoderConfig(name="vjepa2", weights=str(junk), weights_format="original"))


def test_compact_vla_of_fewer_than_seven_action_dims_builds_without_a_gripper() -> None:
    # It used to fail with "gripper_dim=6 outside 0..3": the default tokenizer kept LIBERO's gripper dimension.
    policy = CompactVLA(PolicyConfig(**{**TINY_POLICY, "action_dim": 4}))  # type: ignore[arg-type]
    assert policy.tokenizer.action_dim == 4 and policy.tokenizer.gripper_dim is None
    assert ActionTokenizer.identity().gripper_dim == 6


@pytest.mark.parametrize(("action", "shapes"), [
    ({"q01": [-1.0] * 7, "q99": [1.0] * 7, "mask": [False]}, r"\(7,\), \(7,\) and \(1,\)"),
    ({"q01": [[-1.0] * 7], "q99": [[1.0] * 7]}, r"\(1, 7\), \(1, 7\) and \(1,\)"),
])
def test_load_norm_stats_refuses_stats_of_mismatched_shapes(tmp_path: Path, action: dict, shapes: str) -> None:
    (tmp_path / "dataset_statistics.json").write_text(json.dumps({"libero": {"action": action}}))
    with pytest.raises(InputFileError, match=r"action\.q01, action\.q99 and action\.mask must be flat lists of one "
                                             r"length, got shapes " + shapes):
        load_norm_stats(tmp_path, None)
