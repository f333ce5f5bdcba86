"""OpenVLA-OFT adapter on a tiny randomly initialised Prismatic-layout model (a real LlamaForCausalLM)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from policy_helpers import make_batch
from torch import nn

from srpo.config.base import ConfigError
from srpo.errors import InputFileError
from srpo.policies.base import PolicyInput
from srpo.policies.openvla_oft import (
    OpenVLAOFTPolicy,
    action_prompt,
    action_token_ids,
    bin_logits_from_vocab_logits,
    build_tiny_vla,
    center_crop,
    load_norm_stats,
)

VOCAB = 400
NUM_PATCHES = (32 // 8) ** 2


@pytest.fixture(scope="module")
def tiny_oft() -> OpenVLAOFTPolicy:
    return build_tiny_vla(vocab_size=VOCAB, pad_to=416)


def test_token_layout(tiny_oft: OpenVLAOFTPolicy) -> None:
    assert action_prompt("Put the Bowl on the plate") == (
        "In: What action should the robot take to put the bowl on the plate?\nOut:"
    )
    ids = tiny_oft.input_ids("open the drawer").tolist()
    prompt = tiny_oft.tokenize(action_prompt("open the drawer"))
    assert ids[0] == 1 and ids[: len(prompt)] == prompt
    assert ids[len(prompt)] == 3  # the "empty" token appended after "Out:"
    assert ids[len(prompt) + 1 : -1] == [1] * 56
    assert ids[-1] == 2 and len(ids) == len(prompt) + 1 + 56 + 1


def test_bin_slice_maps_bin_b_to_id_vocab_minus_one_minus_b() -> None:
    logits = torch.arange(416, dtype=torch.float32).expand(2, 3, 416)
    bins = bin_logits_from_vocab_logits(logits, vocab_size=VOCAB)
    assert bins.shape == (2, 3, 256)
    assert bins[0, 0, 0].item() == VOCAB - 1 and bins[0, 0, 255].item() == VOCAB - 256
    assert action_token_ids(32000)[:2].tolist() == [31999, 31998]


def test_action_logits_are_read_one_position_before_each_placeholder(tiny_oft: OpenVLAOFTPolicy) -> None:
    batch = make_batch(1)
    got = tiny_oft.action_logits(batch)
    # Recompute the whole sequence independently: [BOS, patches, text[1:]] with zeroed placeholders.
    ids = tiny_oft.input_ids(batch.instructions[0])[None]
    lm = tiny_oft.model.language_model
    emb = lm.get_input_embeddings()(ids)
    first_placeholder = len(tiny_oft.prompt_ids(batch.instructions[0]))
    emb[:, first_placeholder : first_placeholder + 56] = 0.0
    patches = tiny_oft.model.projector(tiny_oft.model.vision_backbone(tiny_oft.preprocess_images(batch.images)))
    seq = torch.cat([emb[:, :1], patches, emb[:, 1:]], 1)
    full = lm(inputs_embeds=seq, attention_mask=torch.zeros(1, 1, seq.shape[1], seq.shape[1])).logits
    # Placeholder t sits at sequence index NUM_PATCHES + first_placeholder + t; its token is predicted one before.
    rows = NUM_PATCHES + first_placeholder + torch.arange(56) - 1
    expected = full[0, rows][:, VOCAB - 256 : VOCAB].flip(-1)
    torch.testing.assert_close(got[0], expected, atol=1e-5, rtol=1e-5)


def test_sampling_is_restricted_to_action_bins() -> None:
    policy = build_tiny_vla(vocab_size=VOCAB, pad_to=416)
    lm = policy.model.language_model
    head = nn.Linear(lm.lm_head.in_features, lm.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(lm.lm_head.weight)
        head.bias.zero_()
        head.bias[10] = 100.0  # a text token
        head.bias[410] = 100.0  # a padding id above vocab_size
        head.bias[VOCAB - 1 - 5] = 30.0  # bin 5
    lm.lm_head = head
    batch = make_batch(2)
    greedy = policy.sample(batch, temperature=1.6, greedy=True)
    assert (greedy.tokens == 5).all()
    s = policy.sample(batch, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert s.tokens.min() >= 0 and s.tokens.max() < 256


def test_log_probs_consistent_normalised_and_differentiable(tiny_oft: OpenVLAOFTPolicy) -> None:
    batch = make_batch(2)
    s = tiny_oft.sample(batch, temperature=1.6, generator=torch.Generator().manual_seed(0))
    lp, ent = tiny_oft.token_log_probs(batch, torch.from_numpy(s.tokens), temperature=1.6)
    np.testing.assert_allclose(lp.detach().numpy(), s.log_probs, atol=1e-5)
    all_lp = torch.log_softmax(tiny_oft.action_logits(batch) / 1.6, -1)
    torch.testing.assert_close(all_lp.exp().sum(-1), torch.ones(2, 56))
    assert (ent > 0).all() and (ent <= np.log(256) + 1e-4).all()
    lp.sum().backward()
    grad = tiny_oft.model.language_model.model.layers[0].self_attn.q_proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    tiny_oft.model.zero_grad(set_to_none=True)


def test_attention_is_bidirectional_unless_causal() -> None:
    batch = make_batch(1)
    for attention, should_change in (("bidirectional", True), ("causal", False)):
        policy = build_tiny_vla(vocab_size=VOCAB, pad_to=416, attention=attention)  # type: ignore[arg-type]
        before = policy.action_logits(batch).detach()
        policy.stop_token_id = 7  # the STOP token comes after every placeholder
        after = policy.action_logits(batch).detach()
        changed = (after[0, 0] - before[0, 0]).abs().max().item() > 1e-5
        assert changed == should_change, attention


def test_batches_of_mixed_prompt_lengths_match_single_runs(tiny_oft: OpenVLAOFTPolicy) -> None:
    batch = make_batch(3)
    batch.instructions[1] = "a much longer instruction than the others"
    together = tiny_oft.action_logits(batch).detach()
    for i in range(3):
        single = PolicyInput(batch.images[i : i + 1], batch.states[i : i + 1], batch.instructions[i : i + 1])
        torch.testing.assert_close(tiny_oft.action_logits(single).detach()[0], together[i], atol=1e-5, rtol=1e-5)


def test_norm_stats_unnormalise_and_invert_the_gripper(tmp_path: Path) -> None:
    stats = {"libero_spatial_no_noops": {"action": {
        "q01": [-0.5, -0.4, -0.3, -0.2, -0.1, -0.05, 0.0], "q99": [0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 1.0],
        "mask": [True] * 6 + [False]}}}
    (tmp_path / "dataset_statistics.json").write_text(json.dumps(stats))
    tok = load_norm_stats(tmp_path, None)
    assert tok.gripper_dim == 6 and tok.gripper_convention == "openvla"
    bins = np.array([[0, 254, 127, 127, 127, 127, 254]])
    a = tok.decode(bins)[0]
    centre0 = -1 + 1 / 255
    assert a[0] == pytest.approx(0.5 * (centre0 + 1) * 1.0 - 0.5, abs=1e-6)
    assert a[1] == pytest.approx(0.5 * (1 - 1 / 255 + 1) * 0.8 - 0.4, abs=1e-6)
    assert a[6] == -1.0  # model value ≈ 1 (open in OpenVLA's data) → env −1 (open)
    with pytest.raises(ConfigError, match=r"unnorm_key='bridge_orig' is not in .*\['libero_spatial_no_noops'\]"):
        load_norm_stats(tmp_path, "bridge_orig")


@pytest.mark.parametrize(("stats", "error", "pattern"), [
    ({"a": {"action": {"q01": [0.0] * 7, "q99": [1.0] * 7}}, "b": {}}, "config",
     r"holds several datasets \['a', 'b'\]: set policy\.unnorm_key"),
    ("[1, 2]", "file", r"must map dataset names to their statistics"),
    ("{\"a\": ", "file", r"is not valid JSON"),
    ({"a": {"action": {"q01": [0.0] * 7}}}, "file", r"\['a'\] needs action\.q01 and action\.q99 .*KeyError: 'q99'"),
    ({"a": {"actions": {}}}, "file", r"KeyError: 'action'"),
    ({"a": {"action": {"q01": [0.0] * 7, "q99": [1.0] * 7, "mask": [True] * 5 + [False] * 2}}}, "file",
     r"more than one un-normalised dimension \[5, 6\]"),
    ({"a": {"action": {"q01": [1.0] * 7, "q99": [0.0] * 7}}}, "file", r"\['a'\]: q99 must be >= q01"),
])
def test_damaged_norm_stats_name_the_file_and_the_fix(tmp_path: Path, stats: object, error: str,
                                                       pattern: str) -> None:
    text = stats if isinstance(stats, str) else json.dumps(stats)
    (tmp_path / "dataset_statistics.json").write_text(text)
    with pytest.raises(ConfigError if error == "config" else InputFileError, match=pattern):
        load_norm_stats(tmp_path, None)


def test_center_crop_keeps_shape_and_zooms_in() -> None:
    img = np.zeros((1, 20, 20, 3), np.uint8)
    img[:, :2] = 255  # a bright top border is cropped away
    out = center_crop(img, area=0.64)  # side 16 px from row 2: the border is gone, the rest is stretched
    assert out.shape == img.shape and out.max() == 0
    assert center_crop(img, area=1.0).max() == 255


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message printed without CUDA")
def test_7b_benchmark_fails_clearly_without_cuda(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).parents[2] / "benchmarks" / "openvla_7b_step.py"
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(script), "--out", str(out)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "needs a CUDA GPU" in proc.stderr
    assert not out.exists()


def test_from_config_needs_a_real_checkpoint_dir(tmp_path: Path) -> None:
    from srpo.config.base import ConfigError
    from srpo.config.policy import PolicyConfig

    with pytest.raises(ConfigError, match=r"policy\.checkpoint"):
        PolicyConfig(kind="openvla_oft")
    with pytest.raises(InputFileError, match=r"config\.json is missing"):
        OpenVLAOFTPolicy.from_config(PolicyConfig(kind="openvla_oft", checkpoint=str(tmp_path), device="cpu"))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(InputFileError, match="no auto_map entry"):
        OpenVLAOFTPolicy.from_config(PolicyConfig(kind="openvla_oft", checkpoint=str(tmp_path), device="cpu"))
